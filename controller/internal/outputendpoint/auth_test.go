package outputendpoint

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"

	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
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

// TestReviewBudgetsAreNamespaces floods the endpoint from an attacker's
// namespace, with made-up tokens, with tokens signed by a key of its own
// that claim the victim's namespace, and with genuine tokens of its own pods,
// then the victim's pod authenticates: it is not kept waiting, and only the
// attacker's own budgets are spent.
func TestReviewBudgetsAreNamespaces(t *testing.T) {
	h := &handler{client: k8s, log: logr.Discard(),
		limits: newLimits(Limits{TokenReviewsPerSecond: 0.01, TokenReviewBurst: 2, BusyWait: 50 * time.Millisecond})}
	h.limits.tarpitDelay = 0
	httpClient, err := rest.HTTPClientFor(restConfig)
	must(t, err)
	h.issuer, err = newIssuer(restConfig, httpClient, logr.Discard())
	must(t, err)
	attackerNS, victimNS := newNamespace(t), newNamespace(t)
	attacker := newPod(t, attackerNS, "attacker", nil, "gen")
	victim := newPod(t, victimNS, "victim", nil, "gen")

	authenticate := func(bearer, from string) error { return authenticateFrom(h, bearer, from) }
	status := func(err error) int {
		var he *httpError
		if errors.As(err, &he) {
			return he.status
		}
		return 0
	}

	// Forged tokens from one address: refused (401) without a review until
	// the address has spent its refusals, then answered 429 unchecked.
	own := newSigner(t, tokenKeyID(t, token(t, victim, upload.Audience)))
	answers, start := map[int]int{}, time.Now()
	for i := range 200 {
		for _, bearer := range []string{
			fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.eyJuIjo%dfQ.c2ln", i),
			own.token(t, victimNS, upload.Audience, time.Now()),
		} {
			answers[status(authenticate(bearer, "10.0.0.1"))]++
		}
	}
	// The budget refills while the loop runs.
	refills := int(time.Since(start).Seconds()*refusalsPerSecond) + 1
	if n := answers[http.StatusUnauthorized]; n < refusalBurst || n > refusalBurst+refills || answers[http.StatusTooManyRequests] != 400-n {
		t.Errorf("forged tokens answered %v, want %d (and at most %d refills) 401, the rest 429", answers, refusalBurst, refills)
	}
	// Genuine tokens of the attacker's own pod: two reviews, then its
	// namespace's budget is spent.
	refused := 0
	for range 6 {
		if err := authenticate(token(t, attacker, upload.Audience), "10.0.0.1"); status(err) == http.StatusTooManyRequests {
			refused++
			if !strings.Contains(err.Error(), "namespace "+attackerNS) {
				t.Errorf("429 %q does not name the namespace charged", err)
			}
		} else if err != nil {
			t.Fatalf("attacker's genuine token: %v", err)
		}
	}
	if refused != 4 {
		t.Errorf("%d of the attacker's 6 genuine tokens refused 429, want 4 (burst 2)", refused)
	}
	// The victim's pod behind the same address (a node that masquerades
	// its pods' traffic) is not held back by the attacker's refusals.
	for i := range 2 {
		if err := authenticate(token(t, victim, upload.Audience), "10.0.0.1"); err != nil {
			t.Fatalf("victim's token %d, from the attacker's address after its flood: %v", i, err)
		}
	}
	h.limits.mu.Lock()
	charged := slices.Sorted(maps.Keys(h.limits.budgets))
	h.limits.mu.Unlock()
	if want := slices.Sorted(slices.Values([]string{"namespace " + attackerNS, "namespace " + victimNS, refusalsFrom + "10.0.0.1"})); !slices.Equal(charged, want) {
		t.Errorf("budgets charged %q, want only %q", charged, want)
	}
}

// authenticateFrom has h authenticate a request with bearer from address.
func authenticateFrom(h *handler, bearer, address string) error {
	r := httptest.NewRequest(http.MethodPost, upload.Path, nil)
	r.Header.Set("Authorization", "Bearer "+bearer)
	r.RemoteAddr = address + ":40000"
	_, err := h.authenticate(context.Background(), r)
	return err
}

// tokenKeyID reads the key ID of a signed token's header.
func tokenKeyID(t *testing.T, token string) string {
	t.Helper()
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	must(t, err)
	var h struct{ Kid string }
	must(t, json.Unmarshal(header, &h))
	return h.Kid
}

// TestReviewBudgetsWithoutIssuerKeys: where the issuer's keys cannot be
// read, unknown tokens are charged to their source address.
func TestReviewBudgetsWithoutIssuerKeys(t *testing.T) {
	h := &handler{client: k8s, log: logr.Discard(),
		limits: newLimits(Limits{TokenReviewsPerSecond: 0.01, TokenReviewBurst: 2, BusyWait: 50 * time.Millisecond}),
		issuer: &issuer{fetch: func(context.Context) ([]byte, error) { return nil, errors.New("forbidden") }}}
	h.limits.tarpitDelay = time.Millisecond
	victim := newPod(t, newNamespace(t), "victim", nil, "gen")
	authenticate := func(bearer, from string) error { return authenticateFrom(h, bearer, from) }
	for i := range 6 {
		err := authenticate(fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.eyJuIjo%dfQ.c2ln", i), "10.0.0.1")
		var he *httpError
		if want := map[bool]int{true: http.StatusUnauthorized, false: http.StatusTooManyRequests}[i < 2]; !errors.As(err, &he) || he.status != want {
			t.Fatalf("made-up token %d without keys: %v, want %d", i, err, want)
		}
	}
	if err := authenticate(token(t, victim, upload.Audience), "10.0.0.2"); err != nil {
		t.Fatalf("victim's token from its own address: %v", err)
	}
}

// TestTarpitHoldsABoundedNumber: a throttled address's requests are held
// for the delay, at most maxTarpitted at once; the rest are answered at once.
func TestTarpitHoldsABoundedNumber(t *testing.T) {
	l := newLimits(Limits{})
	l.tarpitDelay = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var held sync.WaitGroup
	for range maxTarpitted {
		held.Add(1)
		go func() { defer held.Done(); l.tarpit(ctx, "10.0.0.1") }()
	}
	testenv.Eventually(t, 10*time.Second, "the tarpit holding its bound", func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if n := l.tarpitted["10.0.0.1"]; n != maxTarpitted {
			return fmt.Errorf("%d requests held, want %d", n, maxTarpitted)
		}
		return nil
	})
	start := time.Now()
	l.tarpit(ctx, "10.0.0.1") // beyond the bound: at once
	if took := time.Since(start); took > time.Second {
		t.Errorf("a request beyond the tarpit's bound was held %s", took)
	}
	cancel()
	held.Wait()
	if len(l.tarpitted) != 0 {
		t.Errorf("tarpit still counts %v", l.tarpitted)
	}
}
