package outputendpoint

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/latencies"
)

// BenchmarkExitToSecret (figure 8 of docs/performance.md) measures, over
// 1,000 runs one after the other, the time from a run's containers exiting
// to its output Secrets existing: a plain one and a new version of a
// versioned one. There is no kubelet here, so "exit" is the moment the
// persister sends its upload (it uploads when the main containers have
// exited); the container statuses are set just before. Each run is its own
// QuarksJob, Job and pod with its own pod-bound token, as in a cluster, so
// every upload pays a TokenReview; the uploads go through the real endpoint.
// It also reports the time until the endpoint answers (after the result is
// recorded in the QuarksJob's status) and how many uploads were asked to
// retry.
func BenchmarkExitToSecret(b *testing.B) {
	const runs, parallelism = 1000, 8
	for range b.N {
		ns := newNamespace(b)
		type prepared struct {
			pod    *corev1.Pod
			bearer string
		}
		ready := make([]prepared, runs)
		sem := make(chan struct{}, parallelism)
		done := make(chan struct{}, runs)
		for i := range runs {
			go func() {
				sem <- struct{}{}
				defer func() { <-sem; done <- struct{}{} }()
				name := fmt.Sprintf("r%d", i)
				spec := &qjv1.Output{VersionsToKeep: ptr.To[int32](2), OutputMap: qjv1.OutputMap{"gen": {
					"plain.json": {Name: name + "-plain"}, "ver.json": {Name: name + "-ver", Versioned: true}}}}
				r := newRun(b, ns, name, spec, "gen")
				ready[i] = prepared{pod: r.pod, bearer: token(b, r.pod, upload.Audience)}
			}()
		}
		for range runs {
			<-done
		}
		if b.Failed() {
			b.FailNow()
		}

		var written latencies.FirstSeen
		w, err := clientset.CoreV1().Secrets(ns).Watch(context.Background(), metav1.ListOptions{})
		must(b, err)
		go func() {
			for e := range w.ResultChan() {
				if s, ok := e.Object.(*corev1.Secret); ok && e.Type == watch.Added {
					written.Mark(s.Name, time.Now())
				}
			}
		}()

		toSecret := make([]time.Duration, 0, runs)
		toAnswer := make([]time.Duration, 0, runs)
		retried := 0
		for i, run := range ready {
			exit(b, run.pod, map[string]int32{"gen": 0})
			content := fmt.Sprintf(`{"run":"%d"}`, i)
			start := time.Now()
			retries, err := uploader.Send(context.Background(), run.bearer, files(map[string]map[string]string{"gen": {"plain.json": content, "ver.json": content}}))
			must(b, err)
			answered := time.Since(start)
			plain := written.Await(b, fmt.Sprintf("r%d-plain", i))
			versioned := written.Await(b, fmt.Sprintf("r%d-ver-v1", i))
			if versioned.After(plain) {
				plain = versioned
			}
			toSecret = append(toSecret, plain.Sub(start))
			toAnswer = append(toAnswer, answered)
			if retries > 0 {
				retried++
			}
		}
		w.Stop()
		latencies.Report(b, "exit-to-secret", toSecret)
		latencies.Report(b, "exit-to-answer", toAnswer)
		b.ReportMetric(float64(retried), "uploads-retried")
	}
}
