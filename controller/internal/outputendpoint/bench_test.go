package outputendpoint

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// BenchmarkUploadToSecret measures one upload, from the request to the
// answer, which comes after the Secrets are written and the result is
// recorded on the Job: a plain and a versioned Secret, new content each time.
// It reports p50 and p99. There is no kubelet here; the local-cluster e2e
// benchmark measures from container exit.
func BenchmarkUploadToSecret(b *testing.B) {
	t := b
	ns := newNamespace(t)
	spec := &qjv1.Output{VersionsToKeep: ptr32(5), OutputMap: qjv1.OutputMap{"gen": {"plain.json": {Name: "plain"}, "ver.json": {Name: "ver", Versioned: true}}}}
	r := newRun(t, ns, "bench", spec, "gen")
	exit(t, r.pod, map[string]int32{"gen": 0})
	bearer := token(t, r.pod, upload.Audience)

	var latencies []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		content := fmt.Sprintf(`{"n":"%d"}`, i)
		start := time.Now()
		status, answer := post(t, bearer, files(map[string]map[string]string{"gen": {"plain.json": content, "ver.json": content}}))
		latencies = append(latencies, time.Since(start))
		if status != http.StatusOK || len(answer.Problems) != 0 {
			b.Fatalf("status %d %+v", status, answer)
		}
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}

func ptr32(v int32) *int32 { return &v }
