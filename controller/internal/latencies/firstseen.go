package latencies

import (
	"sync"
	"testing"
	"time"
)

// FirstSeen records when each key (an object's name, say, from a watch) was
// first seen, and lets a benchmark wait for a key without polling. The zero
// value is ready to use.
type FirstSeen struct {
	mu      sync.Mutex
	at      map[string]time.Time
	waiting map[string]chan struct{}
}

// Mark records that key was seen at the given time, unless it was seen before.
func (s *FirstSeen) Mark(key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.at[key]; dup {
		return
	}
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	s.at[key] = at
	if ch, ok := s.waiting[key]; ok {
		close(ch)
		delete(s.waiting, key)
	}
}

// When is when key was first seen.
func (s *FirstSeen) When(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[key]
	return t, ok
}

// Await waits up to 30 s for key to be seen and returns when it was.
func (s *FirstSeen) Await(tb testing.TB, key string) time.Time {
	tb.Helper()
	s.mu.Lock()
	at, ok := s.at[key]
	ch := s.waiting[key]
	if !ok && ch == nil {
		if s.waiting == nil {
			s.waiting = map[string]chan struct{}{}
		}
		ch = make(chan struct{})
		s.waiting[key] = ch
	}
	s.mu.Unlock()
	if ok {
		return at
	}
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s not seen after 30 s", key)
	}
	at, _ = s.When(key)
	return at
}

// Count is the number of keys seen.
func (s *FirstSeen) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}

// WaitCount waits up to 5 minutes until n keys were seen; what names them
// in the failure.
func (s *FirstSeen) WaitCount(tb testing.TB, what string, n int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for s.Count() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d %s after 5 minutes", s.Count(), n, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Last is when the last key was first seen.
func (s *FirstSeen) Last() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, t := range s.at {
		if t.After(last) {
			last = t
		}
	}
	return last
}
