package outputendpoint

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestPlausibleToken(t *testing.T) {
	for token, want := range map[string]bool{"a.b.c": true, "not-a-token": false, "a.b": false, "a.b.c.d": false} {
		if got := plausibleToken(token); got != want {
			t.Errorf("plausibleToken(%q) = %v", token, got)
		}
	}
}

func TestUploadsFromUnwatchedNamespacesAreRefused(t *testing.T) {
	h := &handler{watches: func(_ context.Context, namespace string) (bool, error) { return namespace == "watched", nil }}
	_, err := h.resolve(context.Background(), podRef{Namespace: "elsewhere", Name: "p", UID: "u"})
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusForbidden || !strings.Contains(he.msg, "namespace elsewhere is not watched") {
		t.Fatalf("resolve in an unwatched namespace: %v", err)
	}
}
