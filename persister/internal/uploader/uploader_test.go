package uploader

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
)

func newClient(t *testing.T, srv *httptest.Server, token string) *Client {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	httpClient, err := NewHTTPClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	tokenPath := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenPath, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Client{
		Endpoint: srv.URL + upload.Path, TokenPath: tokenPath, HTTP: httpClient, Version: "v1.2.3",
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
}

var request = &upload.Request{Containers: []upload.Container{{Name: "gen", Files: []upload.File{{Name: "a.json", Content: []byte(`{"a":"b"}`)}}}}}

func TestSendRetriesUntilAcknowledged(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer the-token" || r.URL.Path != upload.Path || r.Method != http.MethodPost {
			t.Errorf("request: %s %s %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		// The version skew contract: the protocol version and who speaks it.
		if r.Header.Get(upload.HeaderVersion) != upload.Version || r.UserAgent() != upload.UserAgentPrefix+"v1.2.3" {
			t.Errorf("protocol %q, user agent %q", r.Header.Get(upload.HeaderVersion), r.UserAgent())
		}
		var got upload.Request
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil || string(got.Containers[0].Files[0].Content) != `{"a":"b"}` {
			t.Errorf("body: %+v, %v", got, err)
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(upload.Response{Problems: []string{"waiting for exit codes"}})
			return
		}
		_ = json.NewEncoder(w).Encode(upload.Response{Secrets: []string{"creds"}})
	}))
	defer srv.Close()

	resp, err := newClient(t, srv, "the-token").Send(context.Background(), request)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || len(resp.Secrets) != 1 || resp.Secrets[0] != "creds" {
		t.Fatalf("calls %d, response %+v", calls.Load(), resp)
	}
}

func TestSendStopsOnRefusal(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(upload.Response{Problems: []string{"pod x is not controlled by a Job"}})
	}))
	defer srv.Close()

	_, err := newClient(t, srv, "t").Send(context.Background(), request)
	var permanent *PermanentError
	if !errors.As(err, &permanent) || permanent.Status != 403 || !strings.Contains(err.Error(), "not controlled by a Job") {
		t.Fatalf("want a permanent 403 naming the reason, got %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("a refusal must not be retried; %d calls", calls.Load())
	}
}

func TestSendGivesUpBeforeTheDeadline(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	c := newClient(t, srv, "t")
	srv.Close() // the controller is unreachable

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Send(ctx, request)
	if err == nil || !strings.Contains(err.Error(), "gave up after") {
		t.Fatalf("want a give-up error, got %v", err)
	}
	if elapsed := time.Since(start); elapsed > 600*time.Millisecond {
		t.Fatalf("Send outlived its deadline: %s", elapsed)
	}
}

func TestSendUntrustedCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("a server with an untrusted certificate must not receive the token")
	}))
	defer srv.Close()
	c := newClient(t, srv, "t")
	httpClient, err := NewHTTPClient(selfSignedPEM(t)) // trusts another CA only
	if err != nil {
		t.Fatal(err)
	}
	c.HTTP = httpClient
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Send(ctx, request); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate error, got %v", err)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestNewHTTPClientRejectsEmptyBundle(t *testing.T) {
	if _, err := NewHTTPClient([]byte("not PEM")); err == nil {
		t.Fatal("want an error")
	}
}
