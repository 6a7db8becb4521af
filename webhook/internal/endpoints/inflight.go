package endpoints

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// MaxRequestBytes is the most an admission request body may be: what the
// webhook server reads of one (controller-runtime's bound).
const MaxRequestBytes = 7 << 20

// DefaultMaxBytesInFlight bounds the request bodies held at once unless
// --max-bytes-in-flight says otherwise: two maximal requests (each costs
// about five times its size while it is decoded, patched and answered, and
// the chart gives the webhook 128 MiB), or thousands of ordinary pods (a
// pod's AdmissionReview is a few KiB).
const DefaultMaxBytesInFlight = 2 * MaxRequestBytes

// InFlight bounds the admission request bodies the webhook holds in memory
// at once, so that big or many requests cannot take it past its memory
// limit while it fails closed. A request counts its announced length (the
// most a body may be when none is announced). No source address may hold
// more than a quarter of the bound (at least one maximal request): the
// webhook Service is reachable by any pod, and one pod posting large
// requests must leave room for the API server's. A request that finds no room waits up to the wait given, then is
// answered 429; the API server fails the admission, and the Job controller
// creates the pod again later.
type InFlight struct {
	total      *semaphore.Weighted
	perAddress int64
	wait       time.Duration

	mu        sync.Mutex
	byAddress map[string]int64
}

// NewInFlight bounds the bytes in flight to limit (at least one maximal
// request), waiting up to wait for room.
func NewInFlight(limit int64, wait time.Duration) *InFlight {
	limit = max(limit, MaxRequestBytes)
	return &InFlight{total: semaphore.NewWeighted(limit), perAddress: max(limit/4, MaxRequestBytes), wait: wait, byAddress: map[string]int64{}}
}

// Wrap bounds next's requests.
func (l *InFlight) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		weight := int64(MaxRequestBytes)
		if r.ContentLength >= 0 && r.ContentLength < weight {
			weight = r.ContentLength
		}
		address := remoteAddress(r)
		if !l.reserve(address, weight) {
			http.Error(w, "too many admission request bytes in flight from "+address, http.StatusTooManyRequests)
			return
		}
		defer l.release(address, weight)
		wait, cancel := context.WithTimeout(r.Context(), l.wait)
		defer cancel()
		if err := l.total.Acquire(wait, weight); err != nil {
			http.Error(w, "the webhook is busy with other admission requests; try again", http.StatusTooManyRequests)
			return
		}
		defer l.total.Release(weight)
		next.ServeHTTP(w, r)
	})
}

func (l *InFlight) reserve(address string, weight int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddress[address]+weight > l.perAddress {
		return false
	}
	l.byAddress[address] += weight
	return true
}

func (l *InFlight) release(address string, weight int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddress[address] -= weight; l.byAddress[address] <= 0 {
		delete(l.byAddress, address)
	}
}

// remoteAddress is the request's peer address without its port.
func remoteAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
