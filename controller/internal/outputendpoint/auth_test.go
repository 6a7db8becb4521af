package outputendpoint

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestImageRepository(t *testing.T) {
	for image, want := range map[string]string{
		"docker.io/cfcontainerization/quarks-job-persister:dev":          "docker.io/cfcontainerization/quarks-job-persister",
		"docker.io/cfcontainerization/quarks-job-persister@sha256:aa":    "docker.io/cfcontainerization/quarks-job-persister",
		"docker.io/cfcontainerization/quarks-job-persister:v1@sha256:aa": "docker.io/cfcontainerization/quarks-job-persister",
		"127.0.0.1:5050/persister":                                       "127.0.0.1:5050/persister",
		"127.0.0.1:5050/persister:e2e-pinned":                            "127.0.0.1:5050/persister",
		"persister":                                                      "persister",
	} {
		if got := imageRepository(image); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", image, got, want)
		}
	}
}

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
