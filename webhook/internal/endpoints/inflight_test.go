package endpoints

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestInFlightBoundsBytesAndAddresses holds requests in the handler and
// checks which others are let in: no address past a quarter of the bound,
// and no request past the bound, while another address still gets in.
func TestInFlightBoundsBytesAndAddresses(t *testing.T) {
	l := NewInFlight(4*MaxRequestBytes, 20*time.Millisecond)
	release := make(chan struct{})
	var entered sync.WaitGroup
	h := l.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		entered.Done()
		<-release
	}))
	send := func(from string, size int64) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, PodPath, strings.NewReader(""))
		r.ContentLength, r.RemoteAddr = size, from+":1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	// An attacker's pod holds a maximal request: its quarter is spent.
	var done sync.WaitGroup
	hold := func(from string, size int64) {
		entered.Add(1)
		done.Add(1)
		go func() { defer done.Done(); send(from, size) }()
		entered.Wait()
	}
	hold("10.0.0.1", MaxRequestBytes)
	if w := send("10.0.0.1", 1024); w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "from 10.0.0.1") {
		t.Errorf("a second request from the address past its quarter: %d %q", w.Code, w.Body.String())
	}
	// Two more attackers and an unannounced length fill the bound (each an
	// address's quarter); then nothing fits until one ends.
	hold("10.0.0.2", MaxRequestBytes)
	hold("10.0.0.3", MaxRequestBytes)
	hold("10.0.0.4", -1)
	if w := send("10.0.0.9", 1024); w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "busy") {
		t.Errorf("a request past the bound: %d %q", w.Code, w.Body.String())
	}
	close(release)
	done.Wait()

	// With room again, the API server's ordinary requests go through.
	release = make(chan struct{})
	close(release)
	for range 100 {
		entered.Add(1)
		if w := send("172.18.0.2", 16<<10); w.Code != http.StatusOK {
			t.Fatalf("an ordinary request with room: %d %q", w.Code, w.Body.String())
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byAddress) != 0 {
		t.Errorf("bytes still counted after every request ended: %v", l.byAddress)
	}
}
