package quarksjob

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/references"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
)

// The status computation is pure: these cases need no API server.
func TestComputeStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	qjobWith := func(last *qjv1.Run, request *qjv1.RunRequest) *qjv1.QuarksJob {
		qjob := newQJob("ns", "q", qjv1.StrategyDone)
		qjob.UID, qjob.Generation = "uid", 3
		qjob.Status.LastRun = last
		if request != nil {
			qjob.Annotations = map[string]string{}
			request.Annotate(qjob.Annotations)
		}
		return qjob
	}
	jobOf := func(qjob *qjv1.QuarksJob, n int64, by qjv1.RunTrigger, finished batchv1.JobConditionType) batchv1.Job {
		job, err := runs.NewJob(qjob, runs.Run{Number: n, By: by, InputsHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		job.CreationTimestamp = now
		job.UID = types.UID(fmt.Sprintf("job-uid-%d", n))
		if finished != "" {
			job.Status.Conditions = []batchv1.JobCondition{{Type: finished, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		}
		return *job
	}
	running := func(n int64) *qjv1.Run {
		return &qjv1.Run{Number: n, JobName: runs.JobName("q", n), JobUID: types.UID(fmt.Sprintf("job-uid-%d", n)), Trigger: qjv1.RunTriggerOnce, Result: qjv1.RunRunning}
	}
	heldRun := func(r *qjv1.Run) *qjv1.Run {
		r.Output = &qjv1.Output{OutputMap: qjv1.OutputMap{"c": {"f.json": {Name: "s"}}}}
		r.Uploads = []qjv1.OutputUpload{{Pod: "p", Pending: true, Problems: []string{`the kubelet has not reported the exit code of container "c"`}}}
		return r
	}
	succeeded := func(n int64) *qjv1.Run {
		return &qjv1.Run{Number: n, JobName: runs.JobName("q", n), Trigger: qjv1.RunTriggerOnce, Result: qjv1.RunSucceeded}
	}

	type want struct {
		run       int64
		result    qjv1.RunResult
		trigger   qjv1.RunTrigger
		active    metav1.ConditionStatus
		pending   metav1.ConditionStatus
		pendingOn string // a word the RunPending message must hold
		waiting   metav1.ConditionStatus
		completed bool
	}
	cases := []struct {
		name  string
		qjob  *qjv1.QuarksJob
		obs   func(q *qjv1.QuarksJob) observation
		want  want
		check func(t *testing.T, s qjv1.QuarksJobStatus)
	}{
		{
			name: "never ran",
			qjob: qjobWith(nil, nil),
			obs:  func(*qjv1.QuarksJob) observation { return observation{} },
			want: want{active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if c := meta.FindStatusCondition(s.Conditions, qjv1.ConditionLastRunSucceeded); c == nil || c.Status != metav1.ConditionUnknown {
					t.Errorf("LastRunSucceeded = %+v; want Unknown before any run finished", c)
				}
			},
		},
		{
			name: "a new Job is the newest run",
			qjob: qjobWith(nil, &qjv1.RunRequest{Run: 1, By: qjv1.RunTriggerOnce}),
			obs: func(q *qjv1.QuarksJob) observation {
				job := jobOf(q, 1, qjv1.RunTriggerOnce, "")
				q.Spec.Output = &qjv1.Output{OutputMap: qjv1.OutputMap{"c": {"f.json": {Name: "s"}}}}
				return observation{jobs: []batchv1.Job{job}, started: &startedRun{
					run: runs.Run{Number: 1, By: qjv1.RunTriggerOnce, InputsHash: "h"}, job: &job}}
			},
			want: want{run: 1, result: qjv1.RunRunning, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionTrue, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if s.LastRun.StartTime == nil || s.LastRun.InputsHash != "h" || s.InputsHash != "h" {
					t.Errorf("lastRun = %+v, inputsHash = %q; want the Job's start and hash", s.LastRun, s.InputsHash)
				}
				if s.LastRun.JobUID != "job-uid-1" || s.LastRun.Output == nil || s.LastRun.Output.OutputMap["c"]["f.json"].Name != "s" {
					t.Errorf("lastRun = %+v; want the Job's UID and the output spec recorded", s.LastRun)
				}
			},
		},
		{
			name: "a Job that only claims to be a run is no run",
			qjob: qjobWith(nil, nil),
			obs: func(q *qjv1.QuarksJob) observation {
				return observation{jobs: []batchv1.Job{jobOf(q, 99, qjv1.RunTriggerNow, batchv1.JobComplete)}}
			},
			want: want{active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
		},
		{
			name: "the running run's name on a Job with another UID decides nothing",
			qjob: qjobWith(running(2), nil),
			obs: func(q *qjv1.QuarksJob) observation {
				forged := jobOf(q, 2, qjv1.RunTriggerOnce, batchv1.JobComplete)
				forged.UID = "forged"
				return observation{jobs: []batchv1.Job{forged}}
			},
			want: want{run: 2, result: qjv1.RunRunning, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionTrue, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
		},
		{
			name: "the running run's Job completed",
			qjob: qjobWith(running(2), nil),
			obs: func(q *qjv1.QuarksJob) observation {
				return observation{jobs: []batchv1.Job{jobOf(q, 2, qjv1.RunTriggerOnce, batchv1.JobComplete)}}
			},
			want: want{run: 2, result: qjv1.RunSucceeded, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse, completed: true},
		},
		{
			name: "the run's Job completed with an upload held for its exit codes",
			qjob: qjobWith(heldRun(running(2)), nil),
			obs: func(q *qjv1.QuarksJob) observation {
				return observation{jobs: []batchv1.Job{jobOf(q, 2, qjv1.RunTriggerOnce, batchv1.JobComplete)}}
			},
			want: want{run: 2, result: qjv1.RunRunning, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionTrue, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if want := "the job completed; waiting for the kubelet's exit codes to persist the output of pod p"; s.LastRun.Message != want {
					t.Errorf("message %q; want %q", s.LastRun.Message, want)
				}
			},
		},
		{
			name: "a completion no pod of the run made fails the run at once, held uploads or not",
			qjob: qjobWith(heldRun(running(2)), nil),
			obs: func(q *qjv1.QuarksJob) observation {
				return observation{jobs: []batchv1.Job{jobOf(q, 2, qjv1.RunTriggerOnce, batchv1.JobComplete)},
					unproven: "the Job reports completion, but no pod of this run succeeded for 1 of 1 completions"}
			},
			want: want{run: 2, result: qjv1.RunFailed, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if want := "the Job reports completion, but no pod of this run succeeded"; !strings.Contains(s.LastRun.Message, want) {
					t.Errorf("message %q; want it to hold %q", s.LastRun.Message, want)
				}
			},
		},
		{
			name: "the held upload's exit codes never came",
			qjob: qjobWith(heldRun(running(2)), nil),
			obs: func(q *qjv1.QuarksJob) observation {
				job := jobOf(q, 2, qjv1.RunTriggerOnce, batchv1.JobComplete)
				job.Status.CompletionTime = &metav1.Time{Time: now.Add(-awaitExitCodes)}
				return observation{jobs: []batchv1.Job{job}}
			},
			want: want{run: 2, result: qjv1.RunFailed, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if want := "the kubelet did not report the exit codes of pod p within 2m0s of the job's end"; !strings.Contains(s.LastRun.Message, want) ||
					!strings.HasPrefix(s.LastRun.Message, "the job completed but its output was not persisted: ") {
					t.Errorf("message %q; want it to hold %q", s.LastRun.Message, want)
				}
			},
		},
		{
			name: "the running run's Job failed",
			qjob: qjobWith(running(2), nil),
			obs: func(q *qjv1.QuarksJob) observation {
				return observation{jobs: []batchv1.Job{jobOf(q, 2, qjv1.RunTriggerOnce, batchv1.JobFailed)}}
			},
			want: want{run: 2, result: qjv1.RunFailed, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
		},
		{
			name: "the running run's Job is gone",
			qjob: qjobWith(running(2), nil),
			obs:  func(*qjv1.QuarksJob) observation { return observation{lastJobGone: true} },
			want: want{run: 2, result: qjv1.RunFailed, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if !strings.Contains(s.LastRun.Message, "deleted before it finished") {
					t.Errorf("message = %q", s.LastRun.Message)
				}
			},
		},
		{
			name: "a trigger waits for the active run",
			qjob: qjobWith(running(2), &qjv1.RunRequest{Run: 3, By: qjv1.RunTriggerNow}),
			obs: func(q *qjv1.QuarksJob) observation {
				return observation{jobs: []batchv1.Job{jobOf(q, 2, qjv1.RunTriggerOnce, "")}}
			},
			want: want{run: 2, result: qjv1.RunRunning, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionTrue, pending: metav1.ConditionTrue, pendingOn: "Now", waiting: metav1.ConditionFalse},
		},
		{
			name: "a configuration change waits for the active run",
			qjob: qjobWith(running(2), &qjv1.RunRequest{Run: 2, By: qjv1.RunTriggerOnce}),
			obs: func(q *qjv1.QuarksJob) observation {
				return observation{jobs: []batchv1.Job{jobOf(q, 2, qjv1.RunTriggerOnce, "")},
					configChange: &qjv1.RunRequest{Run: 3, By: qjv1.RunTriggerConfigChange}}
			},
			want: want{run: 2, result: qjv1.RunRunning, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionTrue, pending: metav1.ConditionTrue, pendingOn: "ConfigChange", waiting: metav1.ConditionFalse},
		},
		{
			name: "a run held by a missing ConfigMap is waiting, not pending",
			qjob: qjobWith(succeeded(2), nil),
			obs: func(*qjv1.QuarksJob) observation {
				return observation{configChange: &qjv1.RunRequest{Run: 3, By: qjv1.RunTriggerConfigChange},
					waitingFor: []references.Ref{{Kind: references.ConfigMap, Name: "later"}}}
			},
			want: want{run: 2, result: qjv1.RunSucceeded, trigger: qjv1.RunTriggerOnce, active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionTrue},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if c := meta.FindStatusCondition(s.Conditions, qjv1.ConditionWaitingForReferences); !strings.Contains(c.Message, "ConfigMap later") {
					t.Errorf("WaitingForReferences message = %q; want the missing ConfigMap named", c.Message)
				}
			},
		},
		{
			name: "a Job that could not be created fails its run",
			qjob: qjobWith(succeeded(1), &qjv1.RunRequest{Run: 2, By: qjv1.RunTriggerNow}),
			obs: func(*qjv1.QuarksJob) observation {
				return observation{startFailure: &startFailure{run: runs.Run{Number: 2, By: qjv1.RunTriggerNow}, jobName: "q-2", reason: "the Job could not be created: invalid"}}
			},
			want: want{run: 2, result: qjv1.RunFailed, trigger: qjv1.RunTriggerNow, active: metav1.ConditionFalse, pending: metav1.ConditionFalse, waiting: metav1.ConditionFalse},
			check: func(t *testing.T, s qjv1.QuarksJobStatus) {
				if len(s.PreviousRuns) != 1 || s.PreviousRuns[0].Number != 1 || s.PreviousRuns[0].Result != qjv1.RunSucceeded {
					t.Errorf("previousRuns = %+v; want run 1 Succeeded", s.PreviousRuns)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := computeStatus(c.qjob, c.obs(c.qjob), now)
			if s.ObservedGeneration != 3 {
				t.Errorf("observedGeneration = %d", s.ObservedGeneration)
			}
			if c.want.run == 0 {
				if s.LastRun != nil {
					t.Errorf("lastRun = %+v; want none", s.LastRun)
				}
			} else if l := s.LastRun; l == nil || l.Number != c.want.run || l.Result != c.want.result || l.Trigger != c.want.trigger {
				t.Errorf("lastRun = %+v; want run %d %s by %s", l, c.want.run, c.want.result, c.want.trigger)
			} else if s.RunCount != c.want.run {
				t.Errorf("runCount = %d; want %d", s.RunCount, c.want.run)
			}
			if s.Completed != c.want.completed {
				t.Errorf("completed = %v", s.Completed)
			}
			for _, cond := range []struct {
				kind string
				want metav1.ConditionStatus
			}{{qjv1.ConditionRunActive, c.want.active}, {qjv1.ConditionRunPending, c.want.pending}, {qjv1.ConditionWaitingForReferences, c.want.waiting}} {
				got := meta.FindStatusCondition(s.Conditions, cond.kind)
				if got == nil || got.Status != cond.want || got.ObservedGeneration != 3 {
					t.Errorf("%s = %+v; want %s", cond.kind, got, cond.want)
				}
			}
			if c.want.pendingOn != "" {
				if p := meta.FindStatusCondition(s.Conditions, qjv1.ConditionRunPending); !strings.Contains(p.Message, c.want.pendingOn) {
					t.Errorf("RunPending message = %q; want it to name %s", p.Message, c.want.pendingOn)
				}
			}
			if c.check != nil {
				c.check(t, s)
			}
		})
	}
}

// A new run moves the one it replaces into the history, newest first, which
// keeps qjv1.MaxPreviousRuns summaries with messages cut to a bound.
func TestPreviousRuns(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	qjob := newQJob("ns", "q", qjv1.StrategyManual)
	for n := int64(1); n <= qjv1.MaxPreviousRuns+3; n++ {
		failure := &startFailure{run: runs.Run{Number: n, By: qjv1.RunTriggerNow}, jobName: runs.JobName("q", n),
			reason: fmt.Sprintf("run %d: %s", n, strings.Repeat("é", qjv1.MaxSummaryMessage))}
		qjob.Status = computeStatus(qjob, observation{startFailure: failure}, now)
		if got := qjob.Status.LastRun.Number; got != n {
			t.Fatalf("lastRun = %d; want %d", got, n)
		}
		again := computeStatus(qjob, observation{}, now)
		if len(again.PreviousRuns) != len(qjob.Status.PreviousRuns) {
			t.Fatalf("a reconcile without a new run changed the history: %d → %d runs", len(qjob.Status.PreviousRuns), len(again.PreviousRuns))
		}
	}
	history := qjob.Status.PreviousRuns
	if len(history) != qjv1.MaxPreviousRuns {
		t.Fatalf("previousRuns holds %d runs; want %d", len(history), qjv1.MaxPreviousRuns)
	}
	for i, r := range history {
		want := int64(qjv1.MaxPreviousRuns + 2 - i)
		if r.Number != want || r.Result != qjv1.RunFailed || r.Trigger != qjv1.RunTriggerNow {
			t.Errorf("previousRuns[%d] = run %d %s by %s; want run %d Failed by Now", i, r.Number, r.Result, r.Trigger, want)
		}
		if len(r.Message) > qjv1.MaxSummaryMessage+len("…") || !utf8.ValidString(r.Message) || !strings.HasSuffix(r.Message, "…") {
			t.Errorf("previousRuns[%d].message is %d bytes, valid UTF-8 %v; want at most %d and cut with …", i, len(r.Message), utf8.ValidString(r.Message), qjv1.MaxSummaryMessage)
		}
	}
}
