//go:build e2e

package product_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// BenchmarkExitToSecret runs 100 real job pods, 10 at a time, whose container writes its output
// and exits at once, and reports the time from the container's exit to its output Secret
// existing, p50 and p99 (target: p99 under 2 s). Run it with `make bench-e2e`.
func BenchmarkExitToSecret(b *testing.B) {
	const pods, batch = 100, 10
	for range b.N {
		e := newEnv(b, "bench", nil)
		var latencies []time.Duration
		for first := 0; first < pods; first += batch {
			var names []string
			for i := first; i < first+batch; i++ {
				name := fmt.Sprintf("bench-%d", i)
				names = append(names, name)
				e.apply(name, []byte(outputJobTo(name, name+"-out", `echo '{"k":"v"}' > /mnt/quarks/out.json`, false)))
			}
			for _, name := range names {
				e.wantRun(e.waitRunFinished(name, 1), 1, qjv1.RunSucceeded)
				pods := e.runPods(name, 1)
				if len(pods) != 1 {
					b.Fatalf("%s: %d pods", name, len(pods))
				}
				exited, ok := pods[0].exited["work"]
				written, seen := e.secretSeen(name + "-out")
				if !ok || !seen {
					b.Fatalf("%s: container exit seen %v, Secret seen %v", name, ok, seen)
				}
				latencies = append(latencies, written.Sub(exited))
			}
		}
		slices.Sort(latencies)
		at := func(p float64) float64 { return float64(latencies[int(float64(len(latencies)-1)*p)].Milliseconds()) }
		b.ReportMetric(at(0.50), "p50-ms")
		b.ReportMetric(at(0.99), "p99-ms")
		b.ReportMetric(float64(latencies[len(latencies)-1].Milliseconds()), "max-ms")
	}
}
