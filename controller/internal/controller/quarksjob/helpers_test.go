package quarksjob

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint/uploadtest"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

var ctx = context.Background()

func skipNameValidation() config.Controller {
	return config.Controller{SkipNameValidation: ptr.To(true)}
}

// consistently checks f for d and fails at its first error.
func consistently(t testing.TB, what string, d time.Duration, f func() error) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, d, true, func(context.Context) (bool, error) {
		return false, f() // never done: checked until d has passed, or the first error
	})
	if err != nil && !wait.Interrupted(err) {
		t.Fatalf("%s: %v", what, err)
	}
}

func getQJob(t testing.TB, ns, name string) *qjv1.QuarksJob {
	t.Helper()
	qjob := &qjv1.QuarksJob{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, qjob); err != nil {
		t.Fatal(err)
	}
	return qjob
}

func setStrategy(t testing.TB, ns, name string, s qjv1.Strategy) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		qjob := getQJob(t, ns, name)
		qjob.Spec.Trigger.Strategy = s
		return k8s.Update(ctx, qjob)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// jobNames lists the names of the Jobs in ns that are not being deleted.
func jobNames(t testing.TB, ns string) []string {
	t.Helper()
	list := &batchv1.JobList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range list.Items {
		if j.DeletionTimestamp.IsZero() {
			names = append(names, j.Name)
		}
	}
	sort.Strings(names)
	return names
}

func expectJobs(want ...string) func(t testing.TB, ns string) error {
	return func(t testing.TB, ns string) error {
		got := strings.Join(jobNames(t, ns), ",")
		if got != strings.Join(want, ",") {
			return fmt.Errorf("jobs = [%s]; want [%s]", got, strings.Join(want, ","))
		}
		return nil
	}
}

func waitJobs(t testing.TB, ns string, want ...string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "waiting for Jobs", func() error { return expectJobs(want...)(t, ns) })
}

func keepJobs(t testing.TB, ns string, d time.Duration, want ...string) {
	t.Helper()
	consistently(t, "Jobs changed", d, func() error { return expectJobs(want...)(t, ns) })
}

// finishJob writes the status the Job controller would write when the Job
// ends. Like the Job controller, it waits until the Job is resumed: the
// controller creates every run's Job suspended.
func finishJob(t testing.TB, ns, name string, succeeded bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "waiting for Job "+name+" to be resumed", func() error {
		job := &batchv1.Job{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, job); err != nil {
			return err
		}
		if job.Spec.Suspend != nil && *job.Spec.Suspend {
			list := &qjv1.QuarksJobList{}
			_ = k8s.List(ctx, list, client.InNamespace(ns))
			var records []string
			for _, q := range list.Items {
				records = append(records, fmt.Sprintf("%s: %+v", q.Name, q.Status.LastRun))
			}
			return fmt.Errorf("Job %s is suspended; runs recorded: %s; events: %v", name, strings.Join(records, "; "), eventReasons(t, ns, strings.Split(name, "-")[0]))
		}
		return nil
	})
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		job := &batchv1.Job{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, job); err != nil {
			return err
		}
		now := metav1.Now()
		start := job.CreationTimestamp
		job.Status.StartTime = &start
		if succeeded {
			if err := uploadtest.SucceedJobPod(ctx, k8s, job, job.Name+"-pod"); err != nil {
				return err
			}
			job.Status.Succeeded = 1
			job.Status.CompletionTime = &now
			job.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
			}
		} else {
			job.Status.Failed = 1
			job.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
			}
		}
		return k8s.Status().Update(ctx, job)
	})
	if err != nil {
		t.Fatalf("finishing Job %s: %v", name, err)
	}
}

func waitStatus(t testing.TB, ns, name string, check func(*qjv1.QuarksJob) error) *qjv1.QuarksJob {
	t.Helper()
	var qjob *qjv1.QuarksJob
	testenv.Eventually(t, 20*time.Second, "waiting for the QuarksJob's status", func() error {
		qjob = getQJob(t, ns, name)
		return check(qjob)
	})
	return qjob
}

func lastRun(number int64, result qjv1.RunResult) func(*qjv1.QuarksJob) error {
	return func(q *qjv1.QuarksJob) error {
		l := q.Status.LastRun
		if l == nil || l.Number != number || l.Result != result {
			return fmt.Errorf("lastRun = %+v; want run %d %s", l, number, result)
		}
		return nil
	}
}

func strategyIs(s qjv1.Strategy) func(*qjv1.QuarksJob) error {
	return func(q *qjv1.QuarksJob) error {
		if q.Spec.Trigger.Strategy != s {
			return fmt.Errorf("strategy = %s; want %s", q.Spec.Trigger.Strategy, s)
		}
		return nil
	}
}

func conditionIs(conditionType string, want metav1.ConditionStatus) func(*qjv1.QuarksJob) error {
	return func(q *qjv1.QuarksJob) error {
		if c := meta.FindStatusCondition(q.Status.Conditions, conditionType); c == nil || c.Status != want {
			return fmt.Errorf("condition %s = %+v; want %s", conditionType, c, want)
		}
		return nil
	}
}

// eventReasons lists the reasons of the Events about a QuarksJob, oldest first.
func eventReasons(t testing.TB, ns, name string) []string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(list.Items, func(i, j int) bool {
		return list.Items[i].EventTime.Before(&list.Items[j].EventTime)
	})
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}
