package quarksjob

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// forgedJob is a Job someone who may create Jobs makes to pass for a run of
// qjob: its controller reference, run labels and name are all claims.
func forgedJob(qjob *qjv1.QuarksJob, name, run string, suspended bool) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: qjob.Namespace,
			Labels:      map[string]string{qjv1.LabelQJobName: qjob.Name, qjv1.LabelRun: run},
			Annotations: map[string]string{qjv1.AnnotationRunTrigger: "Now"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob",
				Name: qjob.Name, UID: qjob.UID, Controller: ptr.To(true)}}},
		Spec: batchv1.JobSpec{
			Suspend: ptr.To(suspended),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "main", Image: "attacker/image"}}}},
		},
	}
}

// TestForgedJobsAreNoRuns: a Job that claims a QuarksJob as controller with
// any run number is reported and left alone, and it never counts as a run;
// a Job pre-created under the next run's name makes that run fail with a
// message naming it, and the errand keeps working afterwards.
func TestForgedJobsAreNoRuns(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	if err := k8s.Create(ctx, newQJob(ns, "victim", qjv1.StrategyManual)); err != nil {
		t.Fatal(err)
	}
	victim := waitStatus(t, ns, "victim", func(q *qjv1.QuarksJob) error {
		if q.Status.ObservedGeneration != 1 {
			return fmt.Errorf("not observed yet")
		}
		return nil
	})

	// A finished "run 99" and the Job the next run would be named.
	run99 := forgedJob(victim, "victim-99", "99", false)
	next := forgedJob(victim, "victim-1", "1", false)
	for _, job := range []*batchv1.Job{run99, next} {
		if err := k8s.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	finishJob(t, ns, "victim-99", true)
	eventually(t, "a ForeignJob Event", func() error {
		if !strings.Contains(strings.Join(eventReasons(t, ns, "victim"), ","), "ForeignJob") {
			return fmt.Errorf("events: %v", eventReasons(t, ns, "victim"))
		}
		return nil
	})
	consistently(t, "the forged Jobs are no runs", time.Second, func() error {
		if q := getQJob(t, ns, "victim"); q.Status.LastRun != nil || q.Status.RunCount != 0 {
			return fmt.Errorf("status took a forged Job as a run: %+v", q.Status.LastRun)
		}
		return nil
	})

	setStrategy(t, ns, "victim", qjv1.StrategyNow)
	failed := waitStatus(t, ns, "victim", lastRun(1, qjv1.RunFailed))
	if msg := failed.Status.LastRun.Message; !strings.Contains(msg, `a Job named "victim-1" exists that this controller did not create for run 1`) {
		t.Errorf("run 1 message = %q", msg)
	}
	// The controller deletes nothing it did not create.
	for _, name := range []string{"victim-99", "victim-1"} {
		job := &batchv1.Job{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, job); err != nil || !job.DeletionTimestamp.IsZero() {
			t.Errorf("forged Job %s was touched: %v", name, err)
		}
	}

	// The errand keeps working: the next run is the controller's own.
	setStrategy(t, ns, "victim", qjv1.StrategyNow)
	waitJobs(t, ns, "victim-1", "victim-2", "victim-99")
	finishJob(t, ns, "victim-2", true)
	done := waitStatus(t, ns, "victim", lastRun(2, qjv1.RunSucceeded))
	if done.Status.LastRun.JobUID == next.UID || done.Status.LastRun.JobUID == run99.UID || done.Status.LastRun.JobUID == "" {
		t.Errorf("run 2 recorded Job UID %q", done.Status.LastRun.JobUID)
	}
	waitJobs(t, ns, "victim-1", "victim-99")
}
