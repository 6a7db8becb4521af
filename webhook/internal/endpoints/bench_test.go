package endpoints_test

import (
	"context"
	"slices"
	"testing"
	"time"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// BenchmarkPodAdmission creates QuarksJob pods with declared output through
// the API server, which calls the webhook for each. It reports the p50 and
// p99 of the whole create (client side) and of the pod handler alone
// (server side); the unlabeled case is the same create without the webhook,
// for comparison. Run with -benchtime=500x for 500 pods.
func BenchmarkPodAdmission(b *testing.B) {
	b.Run("injected", benchmarkInjected)
	b.Run("unlabeled", benchmarkUnlabeled)
}

func benchmarkUnlabeled(b *testing.B) {
	ns := namespace(b, nil)
	create := make([]time.Duration, 0, b.N)
	for b.Loop() {
		pod := jobPod(ns, `{"gen":["creds.json","more.json"],"other":["x.json"]}`, "gen", "other")
		delete(pod.Labels, qjv1.LabelQJobName)
		start := time.Now()
		if err := k8s.Create(context.Background(), pod); err != nil {
			b.Fatal(err)
		}
		create = append(create, time.Since(start))
	}
	b.ReportMetric(percentile(create, 50), "create-p50-ms")
	b.ReportMetric(percentile(create, 99), "create-p99-ms")
}

func benchmarkInjected(b *testing.B) {
	ns := namespace(b, nil)
	handlerLatency.reset()
	create := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		pod := jobPod(ns, `{"gen":["creds.json","more.json"],"other":["x.json"]}`, "gen", "other")
		start := time.Now()
		if err := k8s.Create(context.Background(), pod); err != nil {
			b.Fatal(err)
		}
		create = append(create, time.Since(start))
		if persister(pod) == nil {
			b.Fatal("no persister injected")
		}
	}
	b.StopTimer()
	handler := handlerLatency.snapshot()
	if len(handler) < b.N {
		b.Fatalf("the webhook saw %d of %d pods", len(handler), b.N)
	}
	b.ReportMetric(percentile(create, 50), "create-p50-ms")
	b.ReportMetric(percentile(create, 99), "create-p99-ms")
	b.ReportMetric(percentile(handler, 50), "webhook-p50-ms")
	b.ReportMetric(percentile(handler, 99), "webhook-p99-ms")
}

func percentile(d []time.Duration, p int) float64 {
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	i := (len(sorted)*p+99)/100 - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}
