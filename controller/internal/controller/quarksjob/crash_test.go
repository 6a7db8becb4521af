package quarksjob

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
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
	eventually(h.t, what, func() error {
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

// TestCrashAfterEachWrite interrupts the reconciler after each of its writes
// in turn (once per test case), restarts it, and checks that every trigger
// made exactly one run.
func TestCrashAfterEachWrite(t *testing.T) {
	for crashAt := int64(1); ; crashAt++ {
		crashed := false
		ok := t.Run(fmt.Sprintf("write-%d", crashAt), func(t *testing.T) {
			h := newCrashHarness(t, crashAt)
			ns := namespace(t)
			jobs := func(want ...string) func() error {
				return func() error { return expectJobs(want...)(t, ns) }
			}
			status := func(check func(*qjv1.QuarksJob) error) func() error {
				return func() error { return check(getQJob(t, ns, "c")) }
			}

			// Trigger 1: created as a one-off; succeeds.
			if err := k8s.Create(ctx, newQJob(ns, "c", qjv1.StrategyOnce)); err != nil {
				t.Fatal(err)
			}
			h.await("run 1 starts", jobs("c-1"))
			h.await("strategy done", status(strategyIs(qjv1.StrategyDone)))
			finishJob(t, ns, "c-1", true)
			h.await("run 1 recorded", status(lastRun(1, qjv1.RunSucceeded)))
			h.await("run 1 cleaned up", jobs())

			// Trigger 2: once again; fails.
			setStrategy(t, ns, "c", qjv1.StrategyOnce)
			h.await("run 2 starts", jobs("c-2"))
			finishJob(t, ns, "c-2", false)
			h.await("run 2 recorded", status(lastRun(2, qjv1.RunFailed)))

			// Trigger 3: now; the failed run's Job goes when it starts.
			setStrategy(t, ns, "c", qjv1.StrategyNow)
			h.await("run 3 starts", jobs("c-3"))
			h.await("strategy manual", status(strategyIs(qjv1.StrategyManual)))
			finishJob(t, ns, "c-3", true)
			h.await("run 3 recorded", status(lastRun(3, qjv1.RunSucceeded)))
			h.await("run 3 cleaned up", jobs())

			if made := h.jobsMade.Load(); made != 3 {
				t.Errorf("Jobs created = %d; want exactly 3, one per trigger", made)
			}
			if q := getQJob(t, ns, "c"); q.Status.RunCount != 3 {
				t.Errorf("runCount = %d", q.Status.RunCount)
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
			t.Fatalf("more than 40 writes for three runs")
		}
	}
}
