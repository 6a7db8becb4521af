package outputendpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

// signer is an issuer's key pair with its key ID.
type signer struct {
	kid string
	key *ecdsa.PrivateKey
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, key: key}
}

func (s signer) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: string(jose.ES256), Use: "sig"}
}

// token signs a service-account token of namespace for audience, valid from
// now for an hour.
func (s signer) token(t *testing.T, namespace, audience string, now time.Time) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, (&jose.SignerOptions{}).WithHeader("kid", s.kid))
	if err != nil {
		t.Fatal(err)
	}
	claims := tokenClaims{Claims: jwt.Claims{
		Issuer: "https://kubernetes.default.svc", Subject: "system:serviceaccount:" + namespace + ":default",
		Audience: jwt.Audience{audience}, IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
	claims.Kubernetes.Namespace = namespace
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// publishing is an issuer whose published keys the test changes, counting
// the fetches.
type publishing struct {
	keys    []jose.JSONWebKey
	err     error
	fetches int
}

func (p *publishing) issuer() *issuer {
	return &issuer{fetch: func(context.Context) ([]byte, error) {
		p.fetches++
		if p.err != nil {
			return nil, p.err
		}
		return json.Marshal(jose.JSONWebKeySet{Keys: p.keys})
	}}
}

func TestIssuerNamespace(t *testing.T) {
	now := time.Now()
	a, b, tenant := newSigner(t, "a"), newSigner(t, "b"), newSigner(t, "a")
	for _, tc := range []struct {
		name, token string
		want        string // the namespace, or a part of the refusal
	}{
		{"a token of the issuer", a.token(t, "victim", upload.Audience, now), "victim"},
		{"made-up", "a.b.c", "not a signed JWT"},
		{"signed by a key of its own, under the issuer's key ID", tenant.token(t, "victim", upload.Audience, now), "not signed by the cluster's service-account issuer"},
		{"another audience", a.token(t, "victim", "api", now), "audience"},
		{"expired", a.token(t, "victim", upload.Audience, now.Add(-2*time.Hour)), "exp"},
		{"not yet valid", a.token(t, "victim", upload.Audience, now.Add(time.Hour)), "nbf"},
		{"no namespace", a.token(t, "", upload.Audience, now), "names no namespace"},
		{"of a key the issuer does not publish", b.token(t, "victim", upload.Audience, now), "not signed by the cluster's service-account issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &publishing{keys: []jose.JSONWebKey{a.public()}}
			got, err := p.issuer().namespace(context.Background(), tc.token, now)
			var he *httpError
			switch {
			case err == nil && got != tc.want:
				t.Errorf("namespace %q, want %q", got, tc.want)
			case err != nil && (!errors.As(err, &he) || he.status != http.StatusUnauthorized || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("refused with %v, want a 401 naming %q", err, tc.want)
			case err != nil && !strings.HasPrefix(err.Error(), "token not accepted: "):
				t.Errorf("refusal %q does not start as a review's", err)
			}
		})
	}
}

func TestIssuerKeyRotation(t *testing.T) {
	now := time.Now()
	a, b := newSigner(t, "a"), newSigner(t, "b")
	p := &publishing{keys: []jose.JSONWebKey{a.public()}}
	k := p.issuer()
	for range 3 {
		if _, err := k.namespace(context.Background(), a.token(t, "ns", upload.Audience, now), now); err != nil {
			t.Fatal(err)
		}
	}
	if p.fetches != 1 {
		t.Errorf("%d fetches for one key ID, want 1", p.fetches)
	}

	// The issuer rotates to b. Within refetchAfter, unknown key IDs cost no
	// fetch; after it, one fetch finds the new key.
	p.keys = []jose.JSONWebKey{a.public(), b.public()}
	if _, err := k.namespace(context.Background(), b.token(t, "ns", upload.Audience, now), now.Add(time.Second)); err == nil {
		t.Error("a token of a key not yet fetched was accepted within refetchAfter")
	}
	if p.fetches != 1 {
		t.Errorf("%d fetches within refetchAfter, want 1", p.fetches)
	}
	later := now.Add(refetchAfter + time.Second)
	for range 3 {
		if got, err := k.namespace(context.Background(), b.token(t, "ns", upload.Audience, now), later); err != nil || got != "ns" {
			t.Fatalf("after rotation: %q, %v", got, err)
		}
	}
	if p.fetches != 2 {
		t.Errorf("%d fetches after rotation, want 2", p.fetches)
	}
}

func TestIssuerKeysUnavailable(t *testing.T) {
	now := time.Now()
	a := newSigner(t, "a")
	p := &publishing{err: errors.New("forbidden")}
	k := p.issuer()
	for range 3 {
		if _, err := k.namespace(context.Background(), a.token(t, "ns", upload.Audience, now), now); !errors.Is(err, errNoKeys) {
			t.Fatalf("without keys: %v, want errNoKeys", err)
		}
	}
	if p.fetches != 1 {
		t.Errorf("%d fetches within refetchAfter, want 1", p.fetches)
	}
	// A made-up token is refused before any key is needed.
	if _, err := k.namespace(context.Background(), "a.b.c", now); errors.Is(err, errNoKeys) || err == nil {
		t.Errorf("made-up token without keys: %v, want a refusal", err)
	}
	p.err, p.keys = nil, []jose.JSONWebKey{a.public()}
	if got, err := k.namespace(context.Background(), a.token(t, "ns", upload.Audience, now), now.Add(refetchAfter+time.Second)); err != nil || got != "ns" {
		t.Errorf("once published: %q, %v", got, err)
	}
}
