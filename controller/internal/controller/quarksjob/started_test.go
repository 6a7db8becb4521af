package quarksjob

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// TestRunWhosePodsCannotBeCreatedFails: the test API server has no Job
// controller, so no pod starts; the run fails after the run start timeout
// with the API's reason from the Job's FailedCreate Event, and its Job is
// suspended so that nothing of the ended run goes on.
func TestRunWhosePodsCannotBeCreatedFails(t *testing.T) {
	startOperatorWith(t, nil, func(r *Reconciler) { r.RunStartTimeout = 2 * time.Second })
	ns := namespace(t)
	if err := k8s.Create(ctx, newQJob(ns, "blocked", qjv1.StrategyOnce)); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ns, "blocked", lastRun(1, qjv1.RunRunning))
	job := &batchv1.Job{}
	testenv.Eventually(t, 20*time.Second, "the run's Job resumed", func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "blocked-1"}, job); err != nil {
			return err
		}
		if job.Spec.Suspend != nil && *job.Spec.Suspend {
			return fmt.Errorf("still suspended")
		}
		return nil
	})
	refusal := `Error creating: admission webhook "pods.quarks.cloudfoundry.org" denied the request: container "missing" is declared in output.outputMap`
	now := metav1.Now()
	event := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: "blocked-1.failedcreate"},
		InvolvedObject: corev1.ObjectReference{APIVersion: "batch/v1", Kind: "Job", Namespace: ns, Name: job.Name, UID: job.UID},
		Reason:         "FailedCreate", Message: refusal, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "job-controller"},
		FirstTimestamp: now, LastTimestamp: now, Count: 3,
	}
	if err := k8s.Create(ctx, event); err != nil {
		t.Fatal(err)
	}
	q := waitStatus(t, ns, "blocked", lastRun(1, qjv1.RunFailed))
	if msg := q.Status.LastRun.Message; !strings.Contains(msg, "no pod of Job blocked-1 started within 2s") || !strings.Contains(msg, refusal) {
		t.Errorf("run 1 message = %q; want the timeout and the API's refusal", msg)
	}
	testenv.Eventually(t, 20*time.Second, "the ended run's Job suspended", func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "blocked-1"}, job); err != nil {
			return err
		}
		if job.Spec.Suspend == nil || !*job.Spec.Suspend {
			return fmt.Errorf("not suspended")
		}
		return nil
	})
}

// TestInvalidQuarksJobFailsItsRun: a QuarksJob the webhook would have refused
// (here admitted while it was down) fails its run at once with admission's
// message and an Event; no Job is created, and a corrected spec runs.
func TestInvalidQuarksJobFailsItsRun(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	qj := newQJob(ns, "ghost", qjv1.StrategyNow)
	qj.Spec.Output = &qjv1.Output{OutputMap: qjv1.OutputMap{"ghost": {"a.json": {Name: "ghost-a"}}}}
	if err := k8s.Create(ctx, qj); err != nil {
		t.Fatal(err)
	}
	q := waitStatus(t, ns, "ghost", lastRun(1, qjv1.RunFailed))
	want := `spec.output.outputMap[ghost]: Invalid value: "ghost": no container of this name in spec.template.spec.template.spec.containers`
	if msg := q.Status.LastRun.Message; !strings.Contains(msg, "the QuarksJob is invalid, no Job was created") || !strings.Contains(msg, want) {
		t.Errorf("run 1 message = %q; want admission's message %q", msg, want)
	}
	if names := jobNames(t, ns); len(names) != 0 {
		t.Errorf("Jobs of an invalid QuarksJob: %v", names)
	}
	testenv.Eventually(t, 20*time.Second, "a RunFailed Event", func() error {
		if reasons := eventReasons(t, ns, "ghost"); !slices.Contains(reasons, "RunFailed") {
			return fmt.Errorf("events: %v", reasons)
		}
		return nil
	})

	// Corrected, the next trigger runs.
	testenv.Eventually(t, 20*time.Second, "the corrected spec", func() error {
		q := getQJob(t, ns, "ghost")
		q.Spec.Output.OutputMap = qjv1.OutputMap{"main": {"a.json": {Name: "ghost-a"}}}
		q.Spec.Trigger.Strategy = qjv1.StrategyNow
		return k8s.Update(ctx, q)
	})
	waitStatus(t, ns, "ghost", lastRun(2, qjv1.RunRunning))
	waitJobs(t, ns, "ghost-2")
}

func TestStarted(t *testing.T) {
	running := corev1.ContainerStatus{Name: "a", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	pulling := corev1.ContainerStatus{Name: "b", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}
	done := corev1.ContainerStatus{Name: "b", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}
	two := corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}
	cases := []struct {
		name     string
		phase    corev1.PodPhase
		statuses []corev1.ContainerStatus
		want     bool
	}{
		{"running pod", corev1.PodRunning, nil, true},
		{"pending, nothing reported", corev1.PodPending, nil, false},
		{"pending, one container waits for its image", corev1.PodPending, []corev1.ContainerStatus{running, pulling}, false},
		{"pending, one of two reported", corev1.PodPending, []corev1.ContainerStatus{running}, false},
		{"pending, every container ran (phase reported late)", corev1.PodPending, []corev1.ContainerStatus{running, done}, true},
	}
	for _, c := range cases {
		pod := &corev1.Pod{Spec: two, Status: corev1.PodStatus{Phase: c.phase, ContainerStatuses: c.statuses}}
		if got := started(pod); got != c.want {
			t.Errorf("%s: started = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSchemaRefusesBadFileNames: without any webhook the CRD's schema refuses
// output file names that are no plain file names, naming the rule.
func TestSchemaRefusesBadFileNames(t *testing.T) {
	ns := namespace(t)
	for _, name := range []string{"../escape.json", "sub/dir.json", ".."} {
		qj := newQJob(ns, "badfile", qjv1.StrategyManual)
		qj.Spec.Output = &qjv1.Output{OutputMap: qjv1.OutputMap{"main": {name: {Name: "x"}}}}
		err := k8s.Create(ctx, qj)
		if err == nil || !strings.Contains(err.Error(), "an output file name must be a plain file name") {
			t.Errorf("output file %q: err = %v; want the schema's refusal", name, err)
		}
	}
}
