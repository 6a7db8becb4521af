//go:build e2e

package product_test

import (
	"testing"
)

// BenchmarkExitToSecret runs 100 real job pods, 10 at a time, whose container writes its output
// and exits at once, and reports the time from the container's exit to its output Secret
// existing, p50 and p99 (target: p99 under 2 s). Run it with `make bench-e2e`.
func BenchmarkExitToSecret(b *testing.B) {
	for range b.N {
		latencies := newEnv(b, "bench", nil).exitToSecret("bench", 100, 10)
		at := func(p float64) float64 { return float64(latencies[int(float64(len(latencies)-1)*p)].Milliseconds()) }
		b.ReportMetric(at(0.50), "p50-ms")
		b.ReportMetric(at(0.99), "p99-ms")
		b.ReportMetric(float64(latencies[len(latencies)-1].Milliseconds()), "max-ms")
	}
}
