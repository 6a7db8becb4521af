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
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
		// Its size is announced: the controller admits uploads by size.
		if r.ContentLength <= 0 {
			t.Errorf("Content-Length %d, want the body's size", r.ContentLength)
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

// freezingProxy forwards TCP connections to target until freeze is called:
// then the connections it forwards go silent, neither forwarding nor closing,
// as those to a controller pod that was killed and deleted do. Connections
// accepted afterwards are forwarded again.
type freezingProxy struct {
	listener net.Listener
	frozen   chan struct{}
	mu       sync.Mutex
	conns    []net.Conn
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{listener: l, frozen: make(chan struct{})}
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			frozen := p.frozen
			p.mu.Unlock()
			go p.pipe(in, out, frozen)
			go p.pipe(out, in, frozen)
		}
	}()
	return p
}

// pipe copies until frozen is closed; then it holds on to both ends.
func (p *freezingProxy) pipe(dst, src net.Conn, frozen <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze silences the connections forwarded so far.
func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.frozen)
	p.frozen = make(chan struct{})
}

// TestSendSurvivesASilentController: the controller pod that took an upload
// vanishes mid-request, so its connection neither answers nor closes. The
// persister notices within seconds (an HTTP/2 ping goes unanswered), not at
// the attempt's timeout, and the upload reaches another replica in time.
func TestSendSurvivesASilentController(t *testing.T) {
	saved := deadPeerTimeout
	deadPeerTimeout = 200 * time.Millisecond
	t.Cleanup(func() { deadPeerTimeout = saved })

	var proxy *freezingProxy
	var calls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("the persister spoke %s, want HTTP/2 (pings find a silent controller)", r.Proto)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			proxy.freeze() // this replica's answer never arrives
		}
		_ = json.NewEncoder(w).Encode(upload.Response{Secrets: []string{"out"}})
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	proxy = newFreezingProxy(t, srv.Listener.Addr().String())

	c := newClient(t, srv, "t")
	c.Endpoint = "https://" + proxy.listener.Addr().String() + upload.Path
	c.AttemptTimeout = time.Hour // only the silence can end the first attempt
	httpClient, err := NewHTTPClient(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	if err != nil {
		t.Fatal(err)
	}
	c.HTTP = httpClient
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, request)
	if err != nil {
		t.Fatalf("the upload did not survive a silent controller: %v", err)
	}
	if calls.Load() != 2 || len(resp.Secrets) != 1 {
		t.Fatalf("%d calls, answer %+v; want the second call acknowledged", calls.Load(), resp)
	}
}
