package latencies

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[99-i] = time.Duration(i+1) * time.Millisecond // 100 ms … 1 ms, unsorted
	}
	cases := []struct {
		name      string
		latencies []time.Duration
		p         float64
		want      time.Duration
	}{
		{"none", nil, 99, 0},
		{"one", []time.Duration{7}, 50, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"max of 1..100", hundred, 100, 100 * time.Millisecond},
		{"p99 of 1..10 is the largest", hundred[90:], 99, 10 * time.Millisecond},
	}
	for _, c := range cases {
		if got := Percentile(c.latencies, c.p); got != c.want {
			t.Errorf("%s: Percentile(p%v) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestFirstSeen(t *testing.T) {
	var s FirstSeen
	t0 := time.Unix(100, 0)
	go func() {
		s.Mark("a", t0)
		s.Mark("a", t0.Add(time.Second)) // not the first time: ignored
	}()
	if got := s.Await(t, "a"); !got.Equal(t0) {
		t.Errorf("Await(a) = %v, want %v", got, t0)
	}
	s.Mark("b", t0.Add(2*time.Second))
	s.WaitCount(t, "keys", 2)
	if got := s.Last(); !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("Last = %v, want b's time", got)
	}
	if _, ok := s.When("c"); ok {
		t.Error("c was never seen")
	}
}
