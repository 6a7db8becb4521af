package secretwriter

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	var inside atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer k.lock("ns/a")()
			if inside.Add(1) != 1 {
				t.Error("two holders of one key")
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
		}()
	}
	// Another key is not blocked by the first.
	done := make(chan struct{})
	go func() { k.lock("ns/b")(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an unrelated key waited")
	}
	wg.Wait()
	if len(k.locks) != 0 {
		t.Fatalf("locks are not released: %v", k.locks)
	}
}
