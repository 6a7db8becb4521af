// Package uploader sends a pod's output to the controller's output endpoint,
// retrying with backoff until the upload is acknowledged or the context's
// deadline (the pod's grace period, less a margin) is near.
package uploader

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
)

// Client uploads to the output endpoint.
type Client struct {
	// Endpoint is the full URL of the output endpoint.
	Endpoint string
	// Version is the persister's release version, sent in the User-Agent
	// header for the controller's logs and messages.
	Version string
	// TokenPath is the projected token file; it is read for every attempt,
	// since the kubelet rotates it.
	TokenPath string
	// HTTP is the client; NewHTTPClient builds one trusting the CA bundle.
	HTTP *http.Client
	Log  *slog.Logger
	// AttemptTimeout bounds one attempt; default 20s (the controller may wait
	// up to 10s for the kubelet to report exit codes).
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts; defaults
	// 250ms and 4s.
	MinBackoff, MaxBackoff time.Duration
}

// encodedSize is the length of req's JSON encoding, as attempt sends it.
func encodedSize(req *upload.Request) int64 {
	var n byteCounter
	_ = json.NewEncoder(&n).Encode(req) // a Request always encodes
	return int64(n)
}

// byteCounter is a writer that only counts.
type byteCounter int64

func (c *byteCounter) Write(p []byte) (int, error) {
	*c += byteCounter(len(p))
	return len(p), nil
}

// deadPeerTimeout bounds how long the persister waits on a controller that
// does not answer at all: to connect, to shake hands, and for a ping on a
// connection that went quiet (then as long again for its answer).
var deadPeerTimeout = 5 * time.Second

// NewHTTPClient returns an HTTPS client that trusts only the PEM CA bundle.
func NewHTTPClient(caBundle []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return nil, errors.New("the CA bundle holds no PEM certificate")
	}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		// A controller pod that was killed and deleted takes its address
		// with it: nothing answers, not even a reset. Connecting and the
		// handshake fail fast then, and an established connection that
		// stops answering HTTP/2 pings is closed, so the attempt fails
		// within seconds instead of at its timeout, and the retries fit in
		// the grace period. A controller that is only slow answers pings.
		DialContext:         (&net.Dialer{Timeout: deadPeerTimeout, KeepAlive: deadPeerTimeout}).DialContext,
		TLSHandshakeTimeout: deadPeerTimeout,
		ForceAttemptHTTP2:   true,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: deadPeerTimeout, PingTimeout: deadPeerTimeout},
		Proxy:               nil, // the endpoint is in-cluster
	}
	return &http.Client{Transport: transport}, nil
}

// PermanentError is an answer that retrying cannot change.
type PermanentError struct {
	Status   int
	Problems []string
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("the output endpoint refused the upload (HTTP %d): %s", e.Status, strings.Join(e.Problems, "; "))
}

// Send uploads req until acknowledged. It returns the controller's answer, a
// *PermanentError when the controller refused the upload, or the last error
// when ctx ends first.
func (c *Client) Send(ctx context.Context, req *upload.Request) (*upload.Response, error) {
	backoff := cmpOr(c.MinBackoff, 250*time.Millisecond)
	maxBackoff := cmpOr(c.MaxBackoff, 4*time.Second)
	for attempt := 1; ; attempt++ {
		resp, retryAfter, err := c.attempt(ctx, req)
		if err == nil {
			return resp, nil
		}
		var permanent *PermanentError
		if errors.As(err, &permanent) {
			return nil, err
		}
		wait := max(retryAfter, backoff+rand.N(backoff/2+1)) //nolint:gosec // G404: jitter, not a secret
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return nil, fmt.Errorf("gave up after %d attempts, the grace period is nearly over: %w", attempt, err)
		}
		c.Log.Warn("upload not acknowledged yet; retrying", "attempt", attempt, "in", wait.Round(time.Millisecond).String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// attempt sends the upload once. A retryable failure is an error that is not
// a *PermanentError, with the wait the server asked for, if any.
func (c *Client) attempt(ctx context.Context, req *upload.Request) (*upload.Response, time.Duration, error) {
	token, err := os.ReadFile(c.TokenPath)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the service-account token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout(ctx, c.AttemptTimeout))
	defer cancel()
	// The body is encoded while it is sent, so the base64 form of the files
	// is never held in memory whole: the sidecar stays small.
	body, encoder := io.Pipe()
	go func() { encoder.CloseWithError(json.NewEncoder(encoder).Encode(req)) }()
	defer func() { _ = body.Close() }()
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, body)
	if err != nil {
		return nil, 0, &PermanentError{Problems: []string{fmt.Sprintf("invalid endpoint URL %q: %v", c.Endpoint, err)}}
	}
	// The controller admits uploads by their size: a body of unknown length
	// counts as the largest, and few of those fit at once. The size is
	// counted by encoding once without keeping anything.
	httpReq.ContentLength = encodedSize(req)
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set(upload.HeaderVersion, upload.Version)
	if c.Version != "" {
		httpReq.Header.Set("User-Agent", upload.UserAgentPrefix+c.Version)
	}
	httpReq.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))

	httpResp, err := c.HTTP.Do(httpReq)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = httpResp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(httpResp.Body, 1<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the answer: %w", err)
	}
	var resp upload.Response
	if json.Unmarshal(raw, &resp) != nil && len(raw) > 0 {
		resp.Problems = []string{strings.TrimSpace(string(raw))}
	}

	switch status := httpResp.StatusCode; {
	case status == http.StatusOK:
		return &resp, 0, nil
	case retryable(status):
		return nil, retryAfter(httpResp.Header.Get("Retry-After")),
			fmt.Errorf("HTTP %d: %s", status, strings.Join(resp.Problems, "; "))
	default:
		return nil, 0, &PermanentError{Status: status, Problems: resp.Problems}
	}
}

// retryable: the server is busy or not ready, or the token was not accepted
// yet (a token re-read for the next attempt may be).
func retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status == http.StatusUnauthorized
}

func retryAfter(header string) time.Duration {
	seconds, err := strconv.Atoi(strings.TrimSpace(header))
	if err != nil || seconds < 0 {
		return 0
	}
	return min(time.Duration(seconds)*time.Second, 10*time.Second)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// attemptTimeout bounds one attempt: configured, else 20 s or half of what
// is left of the upload's time, whichever is longer. The controller goes on
// writing when an attempt is cut short, but answers only the attempt that
// waited: an output of thousands of Secrets takes longer than 20 s to write.
func attemptTimeout(ctx context.Context, configured time.Duration) time.Duration {
	if configured > 0 {
		return configured
	}
	timeout := 20 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		timeout = max(timeout, time.Until(deadline)/2)
	}
	return timeout
}
