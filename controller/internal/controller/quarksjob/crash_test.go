package quarksjob

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

var errCrashed = errors.New("injected crash")

// crashingClient performs writes until the crashAt-th one; it performs that
// one too, then stops the manager (the crash) and refuses every later write.
// It counts the Jobs it created.
type crashingClient struct {
	client.Client
	crashAt  int64
	writes   atomic.Int64
	crashed  atomic.Bool
	crash    context.CancelFunc
	jobsMade *atomic.Int64
}

func (c *crashingClient) write(f func() error) error {
	if c.crashed.Load() {
		return errCrashed
	}
	err := f()
	if c.writes.Add(1) == c.crashAt {
		c.crashed.Store(true)
		c.crash()
		return errCrashed
	}
	return err
}

func (c *crashingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.write(func() error {
		err := c.Client.Create(ctx, obj, opts...)
		if _, isJob := obj.(*batchv1.Job); isJob && err == nil {
			c.jobsMade.Add(1)
		}
		return err
	})
}

func (c *crashingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.write(func() error { return c.Client.Patch(ctx, obj, patch, opts...) })
}

func (c *crashingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return c.write(func() error { return c.Client.Update(ctx, obj, opts...) })
}

func (c *crashingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	return c.write(func() error { return c.Client.Delete(ctx, obj, opts...) })
}

func (c *crashingClient) Status() client.SubResourceWriter { return crashingStatus{c} }

type crashingStatus struct{ c *crashingClient }

func (s crashingStatus) Create(ctx context.Context, obj client.Object, sub client.Object, opts ...client.SubResourceCreateOption) error {
	return s.c.write(func() error { return s.c.Client.Status().Create(ctx, obj, sub, opts...) })
}

func (s crashingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.c.write(func() error { return s.c.Client.Status().Update(ctx, obj, opts...) })
}

func (s crashingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	return s.c.write(func() error { return s.c.Client.Status().Patch(ctx, obj, patch, opts...) })
}

func (s crashingStatus) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	return s.c.write(func() error { return s.c.Client.Status().Apply(ctx, obj, opts...) })
}

// crashHarness runs the operator with a client that crashes at the crashAt-th
// write, and replaces it with a healthy operator (a restart) once it crashed.
type crashHarness struct {
	t        *testing.T
	op       *operator
	crashing *crashingClient
	restarts int
	jobsMade atomic.Int64
}

func newCrashHarness(t *testing.T, crashAt int64) *crashHarness {
	h := &crashHarness{t: t}
	h.op = startOperator(t, func(c client.Client, cancel context.CancelFunc) client.Client {
		h.crashing = &crashingClient{Client: c, crashAt: crashAt, crash: cancel, jobsMade: &h.jobsMade}
		return h.crashing
	})
	return h
}

// await waits for f, restarting a crashed operator meanwhile.
func (h *crashHarness) await(what string, f func() error) {
	h.t.Helper()
	testenv.Eventually(h.t, 20*time.Second, what, func() error {
		if h.crashing.crashed.Load() && h.restarts == 0 {
			h.op.stop()
			h.restarts++
			h.op = startOperator(h.t, func(c client.Client, cancel context.CancelFunc) client.Client {
				return &crashingClient{Client: c, crash: cancel, jobsMade: &h.jobsMade}
			})
		}
		return f()
	})
}

// crashAfterEachWrite runs scenario once per write of the reconciler,
// interrupting it after that write and restarting it, until the scenario
// takes fewer writes than the crash point: every write is covered. scenario
// returns how many runs its triggers asked for; exactly that many Jobs must
// have been created.
func crashAfterEachWrite(t *testing.T, scenario func(t *testing.T, h *crashHarness, ns string) int64) {
	for crashAt := int64(1); ; crashAt++ {
		crashed := false
		ok := t.Run(fmt.Sprintf("write-%d", crashAt), func(t *testing.T) {
			h := newCrashHarness(t, crashAt)
			ns := namespace(t)
			triggers := scenario(t, h, ns)
			if made := h.jobsMade.Load(); made != triggers {
				t.Errorf("Jobs created = %d; want exactly %d, one per trigger", made, triggers)
			}
			if q := getQJob(t, ns, "c"); q.Status.RunCount != triggers {
				t.Errorf("runCount = %d; want %d", q.Status.RunCount, triggers)
			}
			crashed = h.restarts > 0
		})
		if !ok {
			return
		}
		if !crashed {
			// The scenario takes fewer writes than crashAt: every point is covered.
			if crashAt < 10 {
				t.Fatalf("only %d crash points; the scenario should take more writes", crashAt-1)
			}
			return
		}
		if crashAt >= 40 {
			t.Fatalf("more than 40 writes for the scenario")
		}
	}
}

func (h *crashHarness) jobs(ns string, want ...string) func() error {
	return func() error { return expectJobs(want...)(h.t, ns) }
}

// resumed: the controller resumed the run's Job it created suspended.
func (h *crashHarness) resumed(ns, name string) func() error {
	return func() error {
		job := &batchv1.Job{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, job); err != nil {
			return err
		}
		if job.Spec.Suspend != nil && *job.Spec.Suspend {
			return fmt.Errorf("Job %s is still suspended", name)
		}
		return nil
	}
}

func (h *crashHarness) status(ns string, check func(*qjv1.QuarksJob) error) func() error {
	return func() error { return check(getQJob(h.t, ns, "c")) }
}

// TestCrashAfterEachWrite interrupts the reconciler after each of its writes
// in turn (once per test case), restarts it, and checks that every trigger
// made exactly one run.
func TestCrashAfterEachWrite(t *testing.T) {
	crashAfterEachWrite(t, func(t *testing.T, h *crashHarness, ns string) int64 {
		// Trigger 1: created as a one-off; succeeds.
		if err := k8s.Create(ctx, newQJob(ns, "c", qjv1.StrategyOnce)); err != nil {
			t.Fatal(err)
		}
		h.await("run 1 starts", h.jobs(ns, "c-1"))
		h.await("strategy done", h.status(ns, strategyIs(qjv1.StrategyDone)))
		h.await("c-1 resumed", h.resumed(ns, "c-1"))
		finishJob(t, ns, "c-1", true)
		h.await("run 1 recorded", h.status(ns, lastRun(1, qjv1.RunSucceeded)))
		h.await("run 1 cleaned up", h.jobs(ns))

		// Trigger 2: once again; fails.
		setStrategy(t, ns, "c", qjv1.StrategyOnce)
		h.await("run 2 starts", h.jobs(ns, "c-2"))
		h.await("c-2 resumed", h.resumed(ns, "c-2"))
		finishJob(t, ns, "c-2", false)
		h.await("run 2 recorded", h.status(ns, lastRun(2, qjv1.RunFailed)))

		// Trigger 3: now; the failed run's Job goes when it starts.
		setStrategy(t, ns, "c", qjv1.StrategyNow)
		h.await("run 3 starts", h.jobs(ns, "c-3"))
		h.await("strategy manual", h.status(ns, strategyIs(qjv1.StrategyManual)))
		h.await("c-3 resumed", h.resumed(ns, "c-3"))
		finishJob(t, ns, "c-3", true)
		h.await("run 3 recorded", h.status(ns, lastRun(3, qjv1.RunSucceeded)))
		h.await("run 3 cleaned up", h.jobs(ns))
		return 3
	})
}

// TestCrashAfterEachWriteOnConfigChange does the same for runs started by
// configuration changes, which are recorded nowhere before their Job exists.
func TestCrashAfterEachWriteOnConfigChange(t *testing.T) {
	crashAfterEachWrite(t, func(t *testing.T, h *crashHarness, ns string) int64 {
		createConfigMap(t, ns, "config", map[string]string{"k": "1"})
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}}
		qjob := configJob(ns, "c", func(p *corev1.PodSpec) {
			p.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}}}
		})
		if err := k8s.Create(ctx, qjob); err != nil {
			t.Fatal(err)
		}
		h.await("run 1 starts", h.jobs(ns, "c-1"))
		h.await("c-1 resumed", h.resumed(ns, "c-1"))
		finishJob(t, ns, "c-1", true)
		h.await("run 1 recorded", h.status(ns, lastRun(1, qjv1.RunSucceeded)))
		h.await("run 1 cleaned up", h.jobs(ns))

		// A change runs once.
		change(t, cm, func() { cm.Data["k"] = "2" })
		h.await("run 2 starts", h.jobs(ns, "c-2"))
		h.await("run 2 recorded as running", h.status(ns, lastRun(2, qjv1.RunRunning)))

		// A change while run 2 is active waits for it, then runs once.
		change(t, cm, func() { cm.Data["k"] = "3" })
		h.await("run 3 pending", h.status(ns, conditionIs(qjv1.ConditionRunPending, metav1.ConditionTrue)))
		h.await("c-2 resumed", h.resumed(ns, "c-2"))
		finishJob(t, ns, "c-2", true)
		h.await("run 3 starts", h.jobs(ns, "c-3"))
		h.await("c-3 resumed", h.resumed(ns, "c-3"))
		finishJob(t, ns, "c-3", true)
		h.await("run 3 recorded", h.status(ns, lastRun(3, qjv1.RunSucceeded)))
		h.await("run 3 cleaned up", h.jobs(ns))
		consistently(t, "no further run", 3*testDebounce, h.jobs(ns))
		return 3
	})
}
