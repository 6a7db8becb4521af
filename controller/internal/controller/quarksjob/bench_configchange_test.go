package quarksjob

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// BenchmarkConfigChangeFanOut changes one ConfigMap that 500 one-offs
// reference and measures the time until all 500 runs have started (their
// Jobs resumed), exactly 500, next to plain calls making the API writes that
// starting 500 runs needs (the floor, as in BenchmarkFanIn).
func BenchmarkConfigChangeFanOut(b *testing.B) {
	const total, parallelism = 500, 8
	for range b.N {
		servingQuarksJobs(b)
		ns := namespace(b)
		op := startOperatorIn(b, ns, nil)
		op.waitSynced()
		createConfigMap(b, ns, "shared", map[string]string{"k": "0"})
		jw := watchJobs(b, ns)
		inParallel(b, total, parallelism, func(i int) error {
			return k8s.Create(ctx, configJob(ns, fmt.Sprintf("q%d", i), func(p *corev1.PodSpec) {
				p.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "shared"}}}}
			}))
		})
		jw.resumed.WaitCount(b, "first runs started", total)
		// Finish the first runs so that the change starts new ones at once.
		inParallel(b, total, parallelism, func(i int) error {
			finishJob(b, ns, fmt.Sprintf("q%d-1", i), true)
			return nil
		})
		testenv.Eventually(b, 20*time.Second, "first runs recorded", func() error {
			list := &qjv1.QuarksJobList{}
			if err := k8s.List(ctx, list); err != nil {
				return err
			}
			for _, q := range list.Items {
				if q.Namespace == ns && (q.Status.LastRun == nil || q.Status.LastRun.Result != qjv1.RunSucceeded) {
					return fmt.Errorf("%s not recorded yet", q.Name)
				}
			}
			return nil
		})

		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared"}}
		start := time.Now()
		change(b, cm, func() { cm.Data["k"] = "1" })
		jw.resumed.WaitCount(b, "second runs started", 2*total)
		operator := jw.resumed.Last().Sub(start)
		time.Sleep(3 * testDebounce)
		if n := jw.created.Count(); n != 2*total {
			b.Fatalf("%d runs after the change; want exactly %d", n-total, total)
		}
		op.stop()

		floor := timeWrites(b, total, parallelism, func(ns string) func(i int) error {
			// One-offs whose first run is recorded, as the operator's are.
			qjobs := make([]*qjv1.QuarksJob, total)
			inParallel(b, total, parallelism, func(i int) error {
				if err := onceRunWrites(ns, i); err != nil {
					return err
				}
				qjobs[i] = &qjv1.QuarksJob{}
				return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("q%d", i)}, qjobs[i])
			})
			return func(i int) error {
				return startRunWrites(qjobs[i], runs.Run{Number: 2, By: qjv1.RunTriggerConfigChange})
			}
		})
		b.ReportMetric(operator.Seconds(), "operator-s")
		b.ReportMetric(floor.Seconds(), "floor-s")
		b.ReportMetric(operator.Seconds()/floor.Seconds(), "over-floor")
	}
}
