package quarksjob

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
)

// Benchmarks against the envtest API server. Run them with
//
//	make bench
//
// They print their figures with b.ReportMetric.

// jobWatch reports when each Job in a namespace first appears.
type jobWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
	w    watch.Interface
}

func watchJobs(b *testing.B, ns string) *jobWatch {
	clientset := kubernetes.NewForConfigOrDie(testConfig)
	w, err := clientset.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	jw := &jobWatch{seen: map[string]time.Time{}, w: w}
	go func() {
		for e := range w.ResultChan() {
			if job, ok := e.Object.(*batchv1.Job); ok && e.Type == watch.Added {
				jw.mu.Lock()
				if _, dup := jw.seen[job.Name]; !dup {
					jw.seen[job.Name] = time.Now()
				}
				jw.mu.Unlock()
			}
		}
	}()
	b.Cleanup(w.Stop)
	return jw
}

func (jw *jobWatch) when(name string) (time.Time, bool) {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	t, ok := jw.seen[name]
	return t, ok
}

func (jw *jobWatch) count() int {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	return len(jw.seen)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(float64(len(sorted)-1)*p)]
}

// BenchmarkTriggerToJob measures the latency from patching strategy "now" to
// the run's Job existing, over 200 triggers (target: p99 under 250 ms).
func BenchmarkTriggerToJob(b *testing.B) {
	const triggers = 200
	for range b.N {
		servingQuarksJobs(b)
		startOperator(b, nil)
		ns := namespace(b)
		if err := k8s.Create(ctx, newQJob(ns, "errand", qjv1.StrategyManual)); err != nil {
			b.Fatal(err)
		}
		jw := watchJobs(b, ns)
		latencies := make([]time.Duration, 0, triggers)
		for i := int64(1); i <= triggers; i++ {
			qjob := getQJob(b, ns, "errand")
			before := qjob.DeepCopy()
			qjob.Spec.Trigger.Strategy = qjv1.StrategyNow
			start := time.Now()
			if err := k8s.Patch(ctx, qjob, client.MergeFrom(before)); err != nil {
				b.Fatal(err)
			}
			name := fmt.Sprintf("errand-%d", i)
			var created time.Time
			eventually(b, "Job "+name, func() error {
				var ok bool
				if created, ok = jw.when(name); !ok {
					return fmt.Errorf("not created")
				}
				return nil
			})
			latencies = append(latencies, created.Sub(start))
			finishJob(b, ns, name, true)
			waitStatus(b, ns, "errand", lastRun(i, qjv1.RunSucceeded))
		}
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		b.ReportMetric(float64(percentile(latencies, 0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(latencies, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "max-ms")
	}
}

// BenchmarkOnceFanIn creates 1,000 QuarksJobs with strategy "once" and
// measures the time until all 1,000 Jobs exist, next to the time plain
// client-go calls take to create the same 1,000 Jobs with the same
// parallelism (target: ratio under 1.5), and next to the time plain calls
// take to make the API writes the 1,000 runs need (the floor).
func BenchmarkOnceFanIn(b *testing.B) {
	const total, parallelism = 1000, 8
	for range b.N {
		servingQuarksJobs(b)
		op := startOperator(b, nil)

		ns := namespace(b)
		jw := watchJobs(b, ns)
		start := time.Now()
		inParallel(b, total, parallelism, func(i int) error {
			return k8s.Create(ctx, newQJob(ns, fmt.Sprintf("q%d", i), qjv1.StrategyOnce))
		})
		// How long creating the QuarksJobs alone took: the floor of the operator's time.
		b.ReportMetric(time.Since(start).Seconds(), "qjob-create-s")
		waitCount(b, jw, total)
		operator := lastSeen(jw).Sub(start)
		op.stop()

		reportAgainstPlain(b, operator, total, parallelism)
		reportAgainstFloor(b, operator, total, parallelism, func(ns string) func(i int) error {
			return func(i int) error { return onceRunWrites(ns, i) }
		})
	}
}

// reportAgainstPlain creates total Jobs with plain client-go calls and the
// given parallelism, and reports the operator's time next to theirs.
func reportAgainstPlain(b *testing.B, operator time.Duration, total, parallelism int) {
	ns := namespace(b)
	jw := watchJobs(b, ns)
	clientset := kubernetes.NewForConfigOrDie(testConfig)
	template := newQJob(ns, "", qjv1.StrategyOnce).Spec.Template
	start := time.Now()
	inParallel(b, total, parallelism, func(i int) error {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("q%d-1", i), Namespace: ns}, Spec: template.Spec}
		_, err := clientset.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
		return err
	})
	waitCount(b, jw, total)
	plain := lastSeen(jw).Sub(start)
	b.ReportMetric(operator.Seconds(), "operator-s")
	b.ReportMetric(plain.Seconds(), "plain-s")
	b.ReportMetric(operator.Seconds()/plain.Seconds(), "ratio")
}

// reportAgainstFloor makes, with plain calls and the given parallelism, the
// API writes that total runs need by the contract (the same objects the
// operator writes), and reports the operator's time next to theirs: what the
// operator adds on top of the API server's cost of its writes. writes returns
// the writes of run i in a namespace; the operator must be stopped.
func reportAgainstFloor(b *testing.B, operator time.Duration, total, parallelism int, writes func(ns string) func(i int) error) {
	run := writes(namespace(b))
	start := time.Now()
	inParallel(b, total, parallelism, run)
	floor := time.Since(start)
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(operator.Seconds()/floor.Seconds(), "over-floor")
}

// onceRunWrites makes the writes of a one-off's first run: the user's
// create, the trigger's acceptance, and the writes of startRunWrites.
func onceRunWrites(ns string, i int) error {
	qjob := newQJob(ns, fmt.Sprintf("q%d", i), qjv1.StrategyOnce)
	if err := k8s.Create(ctx, qjob); err != nil {
		return err
	}
	before := qjob.DeepCopy()
	qjob.Spec.Trigger.Strategy = qjv1.StrategyDone
	qjob.Annotations = map[string]string{}
	qjv1.RunRequest{Run: 1, By: qjv1.RunTriggerOnce, At: time.Now()}.Annotate(qjob.Annotations)
	if err := k8s.Patch(ctx, qjob, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	return startRunWrites(qjob, runs.Run{Number: 1, By: qjv1.RunTriggerOnce})
}

// startRunWrites makes the writes that start a run: its Job, the status
// that records it, and the RunStarted Event.
func startRunWrites(qjob *qjv1.QuarksJob, run runs.Run) error {
	job, err := runs.NewJob(qjob, run)
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, job); err != nil {
		return err
	}
	before := qjob.DeepCopy()
	qjob.Status = computeStatus(qjob, observation{jobs: []batchv1.Job{*job}}, metav1.Now())
	if err := k8s.Status().Patch(ctx, qjob, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	return k8s.Create(ctx, &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: qjob.Namespace, GenerateName: qjob.Name + "-"},
		EventTime:           metav1.NowMicro(),
		ReportingController: "quarks-job", ReportingInstance: "bench",
		Action: "StartRun", Reason: "RunStarted", Type: "Normal",
		Regarding: corev1.ObjectReference{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob", Namespace: qjob.Namespace, Name: qjob.Name, UID: qjob.UID},
		Note:      fmt.Sprintf("run %d started Job %s (trigger %s)", run.Number, job.Name, run.By),
	})
}

// servingQuarksJobs makes the API server ready to write QuarksJobs: the first
// write of a custom resource after the API server starts takes about 2 s on
// 2 cores (it builds what validates and stores it). A running cluster paid
// that long ago, so benchmarks pay it, with a dry-run create, before their
// clocks start.
func servingQuarksJobs(b *testing.B) {
	if err := k8s.Create(ctx, newQJob("default", "warm-up", qjv1.StrategyManual), client.DryRunAll); err != nil {
		b.Fatal(err)
	}
}

func inParallel(b *testing.B, total, parallelism int, f func(i int) error) {
	work := make(chan int)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for range parallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func waitCount(b *testing.B, jw *jobWatch, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for jw.count() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d Jobs after 5 minutes", jw.count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lastSeen(jw *jobWatch) time.Time {
	jw.mu.Lock()
	defer jw.mu.Unlock()
	var last time.Time
	for _, t := range jw.seen {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// BenchmarkWriteCost reports what each kind of write the runs make costs the
// API server: the time per write of 1,000 writes with parallelism 8 (the
// inverse of the throughput), for QuarksJob creates, patches and status
// patches, and for Job creates.
func BenchmarkWriteCost(b *testing.B) {
	const total, parallelism = 1000, 8
	perWrite := func(unit string, write func(i int) error) {
		start := time.Now()
		inParallel(b, total, parallelism, write)
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000/total, unit)
	}
	qjob := func(ns string, i int) *qjv1.QuarksJob {
		return &qjv1.QuarksJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("q%d", i)}}
	}
	for range b.N {
		servingQuarksJobs(b)
		ns := namespace(b)
		perWrite("ms/job-create", func(i int) error {
			owner := newQJob(ns, fmt.Sprintf("j%d", i), qjv1.StrategyOnce)
			owner.UID = types.UID(fmt.Sprintf("uid-%d", i))
			job, err := runs.NewJob(owner, runs.Run{Number: 1, By: qjv1.RunTriggerOnce})
			if err != nil {
				return err
			}
			return k8s.Create(ctx, job)
		})
		perWrite("ms/qjob-create", func(i int) error {
			return k8s.Create(ctx, newQJob(ns, fmt.Sprintf("q%d", i), qjv1.StrategyManual))
		})
		perWrite("ms/qjob-patch", func(i int) error {
			return k8s.Patch(ctx, qjob(ns, i), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"b"}}}`)))
		})
		perWrite("ms/qjob-status-patch", func(i int) error {
			return k8s.Status().Patch(ctx, qjob(ns, i), client.RawPatch(types.MergePatchType, []byte(`{"status":{"runCount":1}}`)))
		})
	}
}
