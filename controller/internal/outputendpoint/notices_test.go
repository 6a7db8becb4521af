package outputendpoint

import (
	"strings"
	"testing"
)

func TestJoinNote(t *testing.T) {
	if got := joinNote([]string{"a", "b"}); got != "a; b" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("x", 600)
	got := joinNote([]string{"first", long, long, "last"})
	if !strings.HasPrefix(got, "first; xxx") || !strings.HasSuffix(got, " … and 2 more") || len(got) > maxNote+10 {
		t.Errorf("got %d bytes: %q…%q", len(got), got[:20], got[len(got)-20:])
	}
	huge := joinNote([]string{strings.Repeat("y", 5000)})
	if len(huge) > maxNote || !strings.HasSuffix(huge, "y…") {
		t.Errorf("a single long message must be cut: %d bytes, ending %q", len(huge), huge[len(huge)-10:])
	}
}

func TestServiceAccountNamespace(t *testing.T) {
	tests := map[string]string{
		"system:serviceaccount:ns:runner": "ns",
		"system:serviceaccount::runner":   "",
		"system:node:n1":                  "",
		"alice":                           "",
		"system:serviceaccount:ns:a:b":    "",
	}
	for user, want := range tests {
		got, ok := serviceAccountNamespace(user)
		if got != want || ok != (want != "") {
			t.Errorf("serviceAccountNamespace(%q) = %q, %v", user, got, ok)
		}
	}
}
