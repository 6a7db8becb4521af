package quarksjob

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

func TestOnceRunsOnceThenDone(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	if err := k8s.Create(ctx, newQJob(ns, "setup", qjv1.StrategyOnce)); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, "setup-1")
	qjob := waitStatus(t, ns, "setup", lastRun(1, qjv1.RunRunning))
	if err := strategyIs(qjv1.StrategyDone)(qjob); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(qjob.Status.Conditions, qjv1.ConditionRunActive); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("RunActive = %+v", c)
	}
	if qjob.Status.LastRun.Trigger != qjv1.RunTriggerOnce || qjob.Status.LastRun.JobName != "setup-1" || qjob.Status.LastRun.StartTime == nil {
		t.Errorf("lastRun = %+v", qjob.Status.LastRun)
	}
	job := &batchv1.Job{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "setup-1"}, job); err != nil {
		t.Fatal(err)
	}
	if job.Labels["carried"] != "yes" || metav1.GetControllerOf(job).Name != "setup" {
		t.Errorf("Job labels %v, owner %+v", job.Labels, metav1.GetControllerOf(job))
	}

	finishJob(t, ns, "setup-1", true)
	qjob = waitStatus(t, ns, "setup", lastRun(1, qjv1.RunSucceeded))
	if !qjob.Status.Completed || qjob.Status.RunCount != 1 || qjob.Status.ObservedGeneration != qjob.Generation || qjob.Status.LastRun.CompletionTime == nil {
		t.Errorf("status = %+v", qjob.Status)
	}
	if c := meta.FindStatusCondition(qjob.Status.Conditions, qjv1.ConditionLastRunSucceeded); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("LastRunSucceeded = %+v", c)
	}
	// The succeeded run's Job is deleted; its record stays in the status.
	waitJobs(t, ns)
	keepJobs(t, ns, time.Second)
	testenv.Eventually(t, 20*time.Second, "events", func() error {
		if got := strings.Join(eventReasons(t, ns, "setup"), ","); got != "RunStarted,RunSucceeded" {
			return fmt.Errorf("events = %s", got)
		}
		return nil
	})
}

func TestErrand(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	if err := k8s.Create(ctx, newQJob(ns, "errand", qjv1.StrategyManual)); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ns, "errand", func(q *qjv1.QuarksJob) error {
		if q.Status.ObservedGeneration != 1 {
			return fmt.Errorf("not observed yet")
		}
		return nil
	})
	keepJobs(t, ns, time.Second)

	setStrategy(t, ns, "errand", qjv1.StrategyNow)
	waitJobs(t, ns, "errand-1")
	waitStatus(t, ns, "errand", strategyIs(qjv1.StrategyManual))
	finishJob(t, ns, "errand-1", true)
	waitStatus(t, ns, "errand", lastRun(1, qjv1.RunSucceeded))
	waitJobs(t, ns)

	setStrategy(t, ns, "errand", qjv1.StrategyNow)
	waitJobs(t, ns, "errand-2")
	qjob := waitStatus(t, ns, "errand", lastRun(2, qjv1.RunRunning))
	if err := strategyIs(qjv1.StrategyManual)(qjob); err != nil {
		t.Error(err)
	}
	if qjob.Status.LastRun.Trigger != qjv1.RunTriggerNow {
		t.Errorf("trigger = %s", qjob.Status.LastRun.Trigger)
	}
}

func TestDoneSetToOnceRunsAgain(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	if err := k8s.Create(ctx, newQJob(ns, "oneoff", qjv1.StrategyOnce)); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, "oneoff-1")
	finishJob(t, ns, "oneoff-1", true)
	waitStatus(t, ns, "oneoff", lastRun(1, qjv1.RunSucceeded))
	waitJobs(t, ns)
	keepJobs(t, ns, 500*time.Millisecond)

	setStrategy(t, ns, "oneoff", qjv1.StrategyOnce)
	waitJobs(t, ns, "oneoff-2")
	waitStatus(t, ns, "oneoff", strategyIs(qjv1.StrategyDone))
}

func TestOneActiveRunAndOnePendingTrigger(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	if err := k8s.Create(ctx, newQJob(ns, "busy", qjv1.StrategyNow)); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, "busy-1")
	waitStatus(t, ns, "busy", strategyIs(qjv1.StrategyManual))

	// Three triggers during the active run: each is accepted, together they
	// make one pending run.
	for range 3 {
		setStrategy(t, ns, "busy", qjv1.StrategyNow)
		waitStatus(t, ns, "busy", strategyIs(qjv1.StrategyManual))
	}
	qjob := waitStatus(t, ns, "busy", func(q *qjv1.QuarksJob) error {
		if c := meta.FindStatusCondition(q.Status.Conditions, qjv1.ConditionRunPending); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("RunPending = %+v", c)
		}
		return nil
	})
	if qjob.Status.LastRun.Number != 1 {
		t.Fatalf("lastRun = %+v", qjob.Status.LastRun)
	}
	keepJobs(t, ns, 500*time.Millisecond, "busy-1")

	finishJob(t, ns, "busy-1", true)
	waitJobs(t, ns, "busy-2")
	waitStatus(t, ns, "busy", lastRun(2, qjv1.RunRunning))
	finishJob(t, ns, "busy-2", true)
	waitStatus(t, ns, "busy", lastRun(2, qjv1.RunSucceeded))
	waitJobs(t, ns)
	keepJobs(t, ns, time.Second)
	qjob = getQJob(t, ns, "busy")
	if c := meta.FindStatusCondition(qjob.Status.Conditions, qjv1.ConditionRunPending); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("RunPending = %+v", c)
	}
}

func TestFailedRunKeepsItsJobUntilTheNextRun(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	if err := k8s.Create(ctx, newQJob(ns, "flaky", qjv1.StrategyNow)); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, "flaky-1")
	finishJob(t, ns, "flaky-1", false)
	qjob := waitStatus(t, ns, "flaky", lastRun(1, qjv1.RunFailed))
	if qjob.Status.Completed || !strings.Contains(qjob.Status.LastRun.Message, "BackoffLimitExceeded") {
		t.Errorf("status = %+v", qjob.Status)
	}
	if c := meta.FindStatusCondition(qjob.Status.Conditions, qjv1.ConditionLastRunSucceeded); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("LastRunSucceeded = %+v", c)
	}
	keepJobs(t, ns, time.Second, "flaky-1")

	setStrategy(t, ns, "flaky", qjv1.StrategyNow)
	waitJobs(t, ns, "flaky-2")
	testenv.Eventually(t, 20*time.Second, "events", func() error {
		if got := strings.Join(eventReasons(t, ns, "flaky"), ","); got != "RunStarted,RunFailed,RunStarted" {
			return fmt.Errorf("events = %s", got)
		}
		return nil
	})
}

func TestInvalidTemplateFailsTheRunWithoutRetrying(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	qjob := newQJob(ns, "broken", qjv1.StrategyOnce)
	// The CRD schema accepts this; the Job API does not.
	qjob.Spec.Template.Spec.Template.Spec.Containers[0].Image = ""
	if err := k8s.Create(ctx, qjob); err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, ns, "broken", lastRun(1, qjv1.RunFailed))
	if !strings.Contains(got.Status.LastRun.Message, "could not be created") || !strings.Contains(got.Status.LastRun.Message, "image") {
		t.Errorf("message = %q", got.Status.LastRun.Message)
	}
	keepJobs(t, ns, time.Second)
	if again := getQJob(t, ns, "broken"); again.Status.RunCount != 1 {
		t.Errorf("runCount = %d", again.Status.RunCount)
	}
}

func TestDeletedJobFailsTheRun(t *testing.T) {
	startOperator(t, nil)
	// Background is what kubectl does: the Job is gone at once. Orphan leaves
	// it terminating (here, without a garbage collector, for good).
	for _, policy := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, metav1.DeletePropagationOrphan} {
		t.Run(string(policy), func(t *testing.T) {
			ns := namespace(t)
			if err := k8s.Create(ctx, newQJob(ns, "gone", qjv1.StrategyOnce)); err != nil {
				t.Fatal(err)
			}
			waitJobs(t, ns, "gone-1")
			waitStatus(t, ns, "gone", lastRun(1, qjv1.RunRunning))
			job := &batchv1.Job{}
			job.Name, job.Namespace = "gone-1", ns
			if err := k8s.Delete(ctx, job, client.PropagationPolicy(policy)); err != nil {
				t.Fatal(err)
			}
			got := waitStatus(t, ns, "gone", lastRun(1, qjv1.RunFailed))
			if !strings.Contains(got.Status.LastRun.Message, "deleted") {
				t.Errorf("message = %q", got.Status.LastRun.Message)
			}
		})
	}
}

func TestRestartStartsNothing(t *testing.T) {
	op := startOperator(t, nil)
	ns := namespace(t)
	for _, s := range []qjv1.Strategy{qjv1.StrategyOnce, qjv1.StrategyNow} {
		if err := k8s.Create(ctx, newQJob(ns, "r-"+string(s), s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := k8s.Create(ctx, newQJob(ns, "r-manual", qjv1.StrategyManual)); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, "r-now-1", "r-once-1")
	finishJob(t, ns, "r-once-1", true)
	finishJob(t, ns, "r-now-1", false)
	waitStatus(t, ns, "r-once", lastRun(1, qjv1.RunSucceeded))
	waitStatus(t, ns, "r-now", lastRun(1, qjv1.RunFailed))
	waitJobs(t, ns, "r-now-1")

	for range 2 {
		op.stop()
		op = startOperator(t, nil)
		keepJobs(t, ns, 1500*time.Millisecond, "r-now-1")
	}
	for _, name := range []string{"r-once", "r-now"} {
		if q := getQJob(t, ns, name); q.Status.RunCount != 1 {
			t.Errorf("%s: runCount = %d", name, q.Status.RunCount)
		}
	}
}

func TestNamespaceSelector(t *testing.T) {
	selector, err := labels.Parse(qjv1.LabelMonitoredNamespace + "=quarks-job")
	if err != nil {
		t.Fatal(err)
	}
	startOperatorWith(t, nil, func(r *Reconciler) { r.NamespaceSelector = selector })
	monitored, other := namespace(t), namespace(t)
	ns := &corev1.Namespace{}
	ns.Name = monitored
	change(t, ns, func() { ns.Labels = map[string]string{qjv1.LabelMonitoredNamespace: "quarks-job"} })
	for _, n := range []string{monitored, other} {
		if err := k8s.Create(ctx, newQJob(n, "q", qjv1.StrategyOnce)); err != nil {
			t.Fatal(err)
		}
	}
	waitJobs(t, monitored, "q-1")
	keepJobs(t, other, time.Second)
	if q := getQJob(t, other, "q"); q.Spec.Trigger.Strategy != qjv1.StrategyOnce || q.Status.ObservedGeneration != 0 {
		t.Errorf("a QuarksJob outside the selected namespaces was touched: %+v", q.Status)
	}
}

// The CRD allows the pods' restartPolicy only Never or OnFailure (a Job
// refuses Always), so the API server rejects it when the QuarksJob is written,
// even without the validating webhook, and names the field and the values.
func TestCRDRejectsRestartPolicyAlways(t *testing.T) {
	ns := namespace(t)
	for policy, allowed := range map[corev1.RestartPolicy]bool{
		corev1.RestartPolicyAlways: false, corev1.RestartPolicyNever: true, corev1.RestartPolicyOnFailure: true, "": true,
	} {
		qjob := newQJob(ns, "policy", qjv1.StrategyManual)
		qjob.Spec.Template.Spec.Template.Spec.RestartPolicy = policy
		err := k8s.Create(ctx, qjob, client.DryRunAll)
		switch {
		case allowed && err != nil:
			t.Errorf("restartPolicy %q: %v", policy, err)
		case !allowed && (err == nil || !strings.Contains(err.Error(), "spec.template.spec.template.spec.restartPolicy") ||
			!strings.Contains(err.Error(), `"Never", "OnFailure"`)):
			t.Errorf("restartPolicy %q: error %v; want a rejection naming the field and the allowed values", policy, err)
		}
	}
}
