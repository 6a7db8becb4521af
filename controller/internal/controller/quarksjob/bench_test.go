package quarksjob

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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
	"code.cloudfoundry.org/quarks-job/controller/internal/latencies"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// Benchmarks against the envtest API server: figures 7 (fan-in) and 8
// (trigger → Job) of docs/performance.md. Run them with
//
//	make bench
//
// They print their figures with b.ReportMetric; tools/cmd/benchtable holds
// the goals.

// jobWatch reports when each Job in a namespace was created, and when it was
// first seen resumed: a run has started when its Job is resumed (the
// controller creates it suspended and resumes it once the run is recorded).
type jobWatch struct {
	created, resumed latencies.FirstSeen
}

func watchJobs(b *testing.B, ns string) *jobWatch {
	clientset := kubernetes.NewForConfigOrDie(testConfig)
	w, err := clientset.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	jw := &jobWatch{}
	go func() {
		for e := range w.ResultChan() {
			now := time.Now()
			job, ok := e.Object.(*batchv1.Job)
			if !ok || (e.Type != watch.Added && e.Type != watch.Modified) {
				continue
			}
			jw.created.Mark(job.Name, now)
			if job.Spec.Suspend == nil || !*job.Spec.Suspend {
				jw.resumed.Mark(job.Name, now)
			}
		}
	}()
	b.Cleanup(w.Stop)
	return jw
}

// BenchmarkTriggerToJob (figure 8) measures the latency from patching
// strategy "now" to the run's Job existing, over 1,000 triggers of an idle
// controller: 1,000 errands, each triggered once, one after the other, the
// next when the previous run has started (its Job resumed) and the
// controller has nothing queued or in progress. Beside it, the
// floor: the same three writes in a row by plain calls (the user's patch,
// the write that accepts the trigger, the Job), 1,000 times, without the
// operator: what the API server alone takes on this machine.
func BenchmarkTriggerToJob(b *testing.B) {
	const triggers, parallelism = 1000, 8
	for range b.N {
		servingQuarksJobs(b)
		ns := namespace(b)
		op := startOperatorIn(b, ns, nil)
		op.waitSynced()
		inParallel(b, triggers, parallelism, func(i int) error {
			return k8s.Create(ctx, newQJob(ns, fmt.Sprintf("errand%d", i), qjv1.StrategyManual))
		})
		testenv.WaitSettled(b, k8s, ns, triggers)
		jw := watchJobs(b, ns)
		measured := make([]time.Duration, 0, triggers)
		for i := range triggers {
			name := fmt.Sprintf("errand%d", i)
			start := time.Now()
			err := k8s.Patch(ctx, &qjv1.QuarksJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
				client.RawPatch(types.MergePatchType, []byte(`{"spec":{"trigger":{"strategy":"now"}}}`)))
			if err != nil {
				b.Fatal(err)
			}
			measured = append(measured, jw.created.Await(b, name+"-1").Sub(start))
			jw.resumed.Await(b, name+"-1")
			op.waitIdle()
		}
		op.waitIdle()
		op.stop()
		latencies.Report(b, "trigger-to-job", measured)
		latencies.Report(b, "trigger-floor", triggerFloor(b, triggers, parallelism))
	}
}

// triggerFloor makes, n times in a row, the writes between a trigger and its
// Job by plain calls, and returns how long each took.
func triggerFloor(b *testing.B, n, parallelism int) []time.Duration {
	ns := namespace(b)
	qjobs := make([]*qjv1.QuarksJob, n)
	inParallel(b, n, parallelism, func(i int) error {
		qjobs[i] = newQJob(ns, fmt.Sprintf("errand%d", i), qjv1.StrategyManual)
		return k8s.Create(ctx, qjobs[i])
	})
	took := make([]time.Duration, 0, n)
	for _, qjob := range qjobs {
		start := time.Now()
		err := k8s.Patch(ctx, qjob, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"trigger":{"strategy":"now"}}}`)))
		if err == nil {
			before := qjob.DeepCopy()
			qjob.Spec.Trigger.Strategy = qjv1.StrategyManual
			qjob.Annotations = map[string]string{}
			qjv1.RunRequest{Run: 1, By: qjv1.RunTriggerNow, At: time.Now()}.Annotate(qjob.Annotations)
			err = k8s.Patch(ctx, qjob, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		}
		var job *batchv1.Job
		if err == nil {
			job, err = runs.NewJob(qjob, runs.Run{Number: 1, By: qjv1.RunTriggerNow})
		}
		if err == nil {
			err = k8s.Create(ctx, job)
		}
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	return took
}

// BenchmarkFanIn (figure 7) creates 100, then 1,000 QuarksJobs with strategy
// "once" and measures the time until every run has started (its Job is
// resumed), next to the floor: the same API writes that the runs need by the
// contract, made by plain calls with the same parallelism, in the same run,
// without the operator. The operator and the floor take turns, 5 times at
// 100 and twice at 1,000, so that a change in the machine's load between
// them weighs on both; the times are the sums. It reports both times, their
// ratio, the operator's writes and API reads per run next to the floor's
// writes, and the growth from 100 to 1,000: the operator's time per
// QuarksJob at 1,000 over that at 100.
func BenchmarkFanIn(b *testing.B) {
	const parallelism = 8
	rounds := map[int]int{100: 5, 1000: 2}
	for range b.N {
		servingQuarksJobs(b)
		var perQJob [2]float64
		for i, total := range []int{100, 1000} {
			var operator, floor time.Duration
			var writes, reads int64
			for range rounds[total] {
				run := onceFanIn(b, total, parallelism)
				operator += run.took
				writes += run.writes
				reads += run.reads
				floor += timeWrites(b, total, parallelism, func(ns string) func(i int) error {
					return func(i int) error { return onceRunWrites(ns, i) }
				})
			}
			runCount := float64(total * rounds[total])
			b.ReportMetric(operator.Seconds(), fmt.Sprintf("operator-%d-s", total))
			b.ReportMetric(floor.Seconds(), fmt.Sprintf("floor-%d-s", total))
			b.ReportMetric(operator.Seconds()/floor.Seconds(), fmt.Sprintf("over-floor-%d", total))
			b.ReportMetric(float64(writes)/runCount, fmt.Sprintf("operator-writes-per-run-%d", total))
			b.ReportMetric(float64(reads)/runCount, fmt.Sprintf("operator-api-reads-per-run-%d", total))
			perQJob[i] = operator.Seconds() / runCount
		}
		b.ReportMetric(onceRunWriteCount, "floor-writes-per-run")
		b.ReportMetric(perQJob[1]/perQJob[0], "growth-100-to-1000")
	}
}

// fanInRun is what one operator run of BenchmarkFanIn took and did.
type fanInRun struct {
	took          time.Duration
	writes, reads int64
}

// onceFanIn creates total one-offs with the given parallelism while the
// operator runs, and returns the time until all their runs started, and the
// writes the reconciler made meanwhile (Events, which the recorder sends,
// are not counted) and its reads from the API server (not the cache).
func onceFanIn(b *testing.B, total, parallelism int) fanInRun {
	// crashAt 0 never crashes: the client only counts the writes.
	counting := &crashingClient{jobsMade: &atomic.Int64{}}
	var reads atomic.Int64
	ns := namespace(b)
	op := launchOperator(b, ns, func(c client.Client, cancel context.CancelFunc) client.Client {
		counting.Client, counting.crash = c, cancel
		return counting
	}, func(r *Reconciler) {
		r.APIReader = countingReader{Reader: r.APIReader, reads: &reads}
	})
	defer op.stop()
	op.waitSynced()
	jw := watchJobs(b, ns)
	start := time.Now()
	inParallel(b, total, parallelism, func(i int) error {
		return k8s.Create(ctx, newQJob(ns, fmt.Sprintf("q%d", i), qjv1.StrategyOnce))
	})
	jw.resumed.WaitCount(b, "runs started", total)
	took := jw.resumed.Last().Sub(start)
	op.waitIdle()
	return fanInRun{took: took, writes: counting.writes.Load(), reads: reads.Load()}
}

// countingReader counts the reads made through it.
type countingReader struct {
	client.Reader
	reads *atomic.Int64
}

func (c countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.reads.Add(1)
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.reads.Add(1)
	return c.Reader.List(ctx, list, opts...)
}

// timeWrites makes, with plain calls and the given parallelism, the API
// writes that total runs need by the contract (the same objects the
// operator writes) and returns how long they took. writes returns the
// writes of run i in a namespace; the operator must be stopped.
func timeWrites(b *testing.B, total, parallelism int, writes func(ns string) func(i int) error) time.Duration {
	run := writes(namespace(b))
	start := time.Now()
	inParallel(b, total, parallelism, run)
	return time.Since(start)
}

// onceRunWriteCount is the number of writes onceRunWrites makes, Event included.
const onceRunWriteCount = 6

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

// startRunWrites makes the writes that start a run: its Job (suspended),
// the status that records it, the RunStarted Event, and the Job's resume.
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
	err = k8s.Create(ctx, &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: qjob.Namespace, GenerateName: qjob.Name + "-"},
		EventTime:           metav1.NowMicro(),
		ReportingController: "quarks-job", ReportingInstance: "bench",
		Action: "StartRun", Reason: "RunStarted", Type: "Normal",
		Regarding: corev1.ObjectReference{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob", Namespace: qjob.Namespace, Name: qjob.Name, UID: qjob.UID},
		Note:      fmt.Sprintf("run %d started Job %s (trigger %s)", run.Number, job.Name, run.By),
	})
	if err != nil {
		return err
	}
	return k8s.Patch(ctx, job, suspendPatch(job, false))
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
