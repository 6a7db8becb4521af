package quarksjob

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
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
// Jobs pre-created under the next runs' names are reported and left alone,
// and the runs take names no one can take beforehand.
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
	testenv.Eventually(t, 20*time.Second, "a ForeignJob Event", func() error {
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

	// Plain Jobs, with no labels or owner, take the names of runs 2 and 3:
	// all anyone who may create Jobs needs.
	squatters := map[types.UID]string{next.UID: next.Name, run99.UID: run99.Name}
	for _, name := range []string{"victim-2", "victim-3"} {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: next.Spec.Template.Spec}}}
		if err := k8s.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		squatters[job.UID] = name
	}

	// Each run takes a name the API server draws, and succeeds.
	for n := int64(1); n <= 3; n++ {
		setStrategy(t, ns, "victim", qjv1.StrategyNow)
		running := waitStatus(t, ns, "victim", lastRun(n, qjv1.RunRunning))
		name := running.Status.LastRun.JobName
		if prefix := fmt.Sprintf("victim-%d-", n); !strings.HasPrefix(name, prefix) || len(name) != len(prefix)+5 {
			t.Errorf("run %d's Job is named %q; want %s and 5 random characters", n, name, prefix)
		}
		if taken, ok := squatters[running.Status.LastRun.JobUID]; ok {
			t.Fatalf("run %d recorded the squatter's Job %s", n, taken)
		}
		finishJob(t, ns, name, true)
		waitStatus(t, ns, "victim", lastRun(n, qjv1.RunSucceeded))
	}
	// The controller deletes nothing it did not create, and its own
	// succeeded runs' Jobs are gone.
	waitJobs(t, ns, "victim-1", "victim-2", "victim-3", "victim-99")
}

// TestOtherJobsAreNotCached: a tenant's Jobs that do not claim to be runs,
// however large, stay out of the controller's cache; a Job with the run
// label is in it.
func TestOtherJobsAreNotCached(t *testing.T) {
	ns := namespace(t)
	op := startOperatorIn(t, ns, nil)
	big := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: ns},
		Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "main", Image: "tenant/image",
				Env: []corev1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 512<<10)}}}},
		}}}}
	if err := k8s.Create(ctx, big); err != nil {
		t.Fatal(err)
	}
	claim := forgedJob(newQJob(ns, "victim", qjv1.StrategyManual), "claim", "1", true)
	claim.OwnerReferences = nil
	if err := k8s.Create(ctx, claim); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the labeled Job in the cache", func() error {
		return op.cache.Get(ctx, client.ObjectKeyFromObject(claim), &batchv1.Job{})
	})
	// The cache has seen the later Job, so it has passed the earlier one.
	if err := op.cache.Get(ctx, client.ObjectKeyFromObject(big), &batchv1.Job{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the tenant's unlabeled Job in the cache: %v, want NotFound", err)
	}
}
