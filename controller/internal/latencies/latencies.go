// Package latencies reports the percentiles of measured latencies as
// benchmark metrics, in one form for every benchmark (see docs/performance.md).
package latencies

import (
	"slices"
	"testing"
	"time"
)

// Percentile is the p-th percentile (0 < p ≤ 100) of the latencies, by the
// nearest-rank method: the smallest latency that p percent of them do not
// exceed. It is 0 for no latencies.
func Percentile(latencies []time.Duration, p float64) time.Duration {
	if len(latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// Report reports the p50, p99 and maximum of the latencies as the metrics
// <name>-p50-ms, <name>-p99-ms and <name>-max-ms.
func Report(b *testing.B, name string, latencies []time.Duration) {
	b.Helper()
	b.ReportMetric(Milliseconds(Percentile(latencies, 50)), name+"-p50-ms")
	b.ReportMetric(Milliseconds(Percentile(latencies, 99)), name+"-p99-ms")
	b.ReportMetric(Milliseconds(Percentile(latencies, 100)), name+"-max-ms")
}

// Milliseconds is d in milliseconds, with microsecond precision.
func Milliseconds(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
