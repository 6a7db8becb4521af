package quarksjob

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/references"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
)

// observation is what a reconcile saw and did.
type observation struct {
	// jobs are the Jobs that claim this QuarksJob as controller, including
	// one created by this reconcile. A claim is not proof: only the Job whose
	// UID a run record holds is the run's.
	jobs []batchv1.Job
	// started is the run this reconcile started (or proved its own after an
	// interrupted reconcile created its Job); its Job has a UID.
	started *startedRun
	// lastJobGone is true when the Job of the run the status shows running
	// no longer exists.
	lastJobGone bool
	// startFailure is set when the requested run's Job could not be created.
	startFailure *startFailure
	// waitingFor lists the missing objects that hold the requested run.
	waitingFor []references.Ref
	// configChange is the run a settled configuration change asks for.
	configChange *qjv1.RunRequest
	// stuck, when set, says why no pod of the running run started within
	// the run start timeout.
	stuck string
	// unproven, when set, says why the running run's Job reports a
	// completion that no pods of the run made (runs.Unproven).
	unproven string
	// baseline is the hash of the referenced data a done one-off without
	// any run starts comparing against.
	baseline string
}

// startedRun is a run whose Job the controller created.
type startedRun struct {
	run runs.Run
	job *batchv1.Job
}

type startFailure struct {
	run     runs.Run
	jobName string
	reason  string
}

// recordedJob is the Job of the recorded run (see isRecorded).
func (o *observation) recordedJob(run *qjv1.Run) *batchv1.Job {
	for i := range o.jobs {
		if isRecorded(&o.jobs[i], run) {
			return &o.jobs[i]
		}
	}
	return nil
}

// computeStatus derives the status from the recorded status and what the
// reconcile observed. It is pure: the reconciler writes its result once.
func computeStatus(qjob *qjv1.QuarksJob, obs observation, now metav1.Time) qjv1.QuarksJobStatus {
	status := *qjob.Status.DeepCopy()
	status.ObservedGeneration = qjob.Generation
	last := status.LastRun

	if s := obs.started; s != nil && (last == nil || s.run.Number > last.Number) {
		last = newRun(s, qjob.Spec.Output, now)
	}
	if f := obs.startFailure; f != nil && (last == nil || f.run.Number > last.Number) {
		// No startTime: the run never started.
		last = &qjv1.Run{Number: f.run.Number, JobName: f.jobName, Trigger: f.run.By,
			CompletionTime: &now, Result: qjv1.RunFailed, Message: f.reason, InputsHash: f.run.InputsHash}
		finish(&status, last, nil)
	}

	if last != nil && last.Result == qjv1.RunRunning {
		job := obs.recordedJob(last)
		outcome := runs.Outcome{Result: qjv1.RunRunning}
		if job != nil {
			outcome = runs.OutcomeOf(job, last)
		}
		if obs.unproven != "" {
			// If the run cannot be proven to have succeeded, it did not,
			// whatever output is still awaited.
			if outcome.Result == qjv1.RunFailed {
				outcome.Message += "; " + obs.unproven
			} else {
				outcome.Message = obs.unproven
			}
			outcome.Result, outcome.Awaiting = qjv1.RunFailed, nil
		}
		switch {
		case outcome.Result != qjv1.RunRunning:
			last.Result, last.Message, last.CompletionTime = outcome.Result, outcome.Message, outcome.CompletionTime
			finish(&status, last, &outcome)
		case len(outcome.Awaiting) > 0 && now.Sub(outcome.CompletionTime.Time) >= awaitExitCodes:
			// The kubelet never reported them: the output cannot be proven.
			last.Result, last.CompletionTime = qjv1.RunFailed, outcome.CompletionTime
			last.Message = fmt.Sprintf("%s; the kubelet did not report the exit codes of %s within %s of the job's end, so their held output was not persisted",
				outcome.Failure, strings.Join(outcome.Awaiting, ", "), awaitExitCodes)
			finish(&status, last, &outcome)
		case len(outcome.Awaiting) > 0:
			last.Message = outcome.Message
		case obs.lastJobGone || (job != nil && !job.DeletionTimestamp.IsZero()):
			// Deleted by someone while it ran: it will never finish.
			last.Result, last.CompletionTime = qjv1.RunFailed, &now
			last.Message = fmt.Sprintf("the Job %s was deleted before it finished", last.JobName)
			finish(&status, last, nil)
		case obs.stuck != "":
			// Its pods could not start: it would never finish.
			last.Result, last.CompletionTime, last.Message = qjv1.RunFailed, &now, obs.stuck
			finish(&status, last, nil)
		}
	}

	if previous := status.LastRun; previous != nil && last != previous {
		status.PreviousRuns = remember(status.PreviousRuns, previous.Summary())
	}
	status.LastRun = last
	if last == nil && obs.baseline != "" {
		status.InputsHash = obs.baseline
	}
	if last != nil {
		status.RunCount = max(status.RunCount, last.Number)
		if last.InputsHash != "" {
			status.InputsHash = last.InputsHash
		}
	}
	setRunConditions(&status, qjob, obs.configChange, now)
	waiting := metav1.Condition{Type: qjv1.ConditionWaitingForReferences, Status: metav1.ConditionFalse, Reason: qjv1.ReasonReferencesFound, Message: "no run is held"}
	if len(obs.waitingFor) > 0 {
		waiting.Status, waiting.Reason = metav1.ConditionTrue, qjv1.ReasonMissingReferences
		waiting.Message = "the run starts when these exist: " + inputs{missing: obs.waitingFor}.missingNames()
	}
	waiting.ObservedGeneration = qjob.Generation
	if meta.SetStatusCondition(&status.Conditions, waiting) {
		meta.FindStatusCondition(status.Conditions, qjv1.ConditionWaitingForReferences).LastTransitionTime = now
	}
	return status
}

// awaitExitCodes bounds how long a run whose Job ended waits for the kubelet
// to report the exit codes its held uploads need (see runs.Outcome.Awaiting).
// An ended Job's pods have terminated: the kubelet reports them within
// seconds, unless the pods were deleted.
const awaitExitCodes = 2 * time.Minute

// awaitRecheck is when a run that waits for exit codes must be looked at
// again, to end it at its bound; 0 when none waits.
func awaitRecheck(status *qjv1.QuarksJobStatus, obs *observation, now metav1.Time) time.Duration {
	last := status.LastRun
	if last == nil || last.Result != qjv1.RunRunning {
		return 0
	}
	job := obs.recordedJob(last)
	if job == nil {
		return 0
	}
	outcome := runs.OutcomeOf(job, last)
	if len(outcome.Awaiting) == 0 {
		return 0
	}
	return max(outcome.CompletionTime.Add(awaitExitCodes).Sub(now.Time), time.Second)
}

// remember puts the summary of a run a newer one replaced as lastRun first
// in the history, which keeps the newest qjv1.MaxPreviousRuns.
func remember(history []qjv1.RunSummary, run qjv1.RunSummary) []qjv1.RunSummary {
	history = append([]qjv1.RunSummary{run}, history...)
	return history[:min(len(history), qjv1.MaxPreviousRuns)]
}

// newRun is the record of a run whose Job the controller created: it holds
// the Job's UID and the output spec the run writes (the QuarksJob's, as
// start read it when it created the Job).
func newRun(s *startedRun, output *qjv1.Output, now metav1.Time) *qjv1.Run {
	start := s.job.CreationTimestamp
	if start.IsZero() {
		start = now
	}
	return &qjv1.Run{
		Number:     s.run.Number,
		JobName:    s.job.Name,
		JobUID:     s.job.UID,
		Trigger:    s.run.By,
		Result:     qjv1.RunRunning,
		StartTime:  &start,
		InputsHash: s.run.InputsHash,
		Output:     output.WithoutReservedKeys(),
	}
}

// finish records a run that just ended in the status fields that describe
// the newest finished run.
func finish(status *qjv1.QuarksJobStatus, last *qjv1.Run, outcome *runs.Outcome) {
	status.Completed = last.Result == qjv1.RunSucceeded
	status.Secrets, status.SecretCount = nil, 0
	condition := metav1.Condition{Type: qjv1.ConditionLastRunSucceeded, Status: metav1.ConditionTrue, Reason: qjv1.ReasonSucceeded, Message: last.Message}
	if last.Result != qjv1.RunSucceeded {
		condition.Status, condition.Reason = metav1.ConditionFalse, qjv1.ReasonFailed
	}
	meta.SetStatusCondition(&status.Conditions, condition)

	if outcome == nil || !outcome.DeclaresOutput {
		meta.RemoveStatusCondition(&status.Conditions, qjv1.ConditionOutputPersisted)
		return
	}
	persisted := metav1.Condition{Type: qjv1.ConditionOutputPersisted, Status: metav1.ConditionFalse, Reason: qjv1.ReasonNotPersisted,
		Message: fmt.Sprintf("run %d: no output was uploaded", last.Number)}
	if out := outcome.Output; out != nil {
		status.Secrets, status.SecretCount = out.Secrets, out.SecretCount
		persisted.Message = fmt.Sprintf("run %d wrote %d Secrets", last.Number, out.WrittenSecrets())
		if len(out.Problems) > 0 {
			persisted.Message += "; problems: " + fmt.Sprint(out.Problems)
		}
		if out.Persisted {
			persisted.Status, persisted.Reason = metav1.ConditionTrue, qjv1.ReasonPersisted
		}
	}
	meta.SetStatusCondition(&status.Conditions, persisted)
}

func setRunConditions(status *qjv1.QuarksJobStatus, qjob *qjv1.QuarksJob, configChange *qjv1.RunRequest, now metav1.Time) {
	last := status.LastRun
	active := metav1.Condition{Type: qjv1.ConditionRunActive, Status: metav1.ConditionFalse, Reason: qjv1.ReasonIdle, Message: "no run is active"}
	if last != nil && last.Result == qjv1.RunRunning {
		active.Status, active.Reason = metav1.ConditionTrue, qjv1.ReasonRunning
		active.Message = fmt.Sprintf("run %d (Job %s) is running", last.Number, last.JobName)
	}
	meta.SetStatusCondition(&status.Conditions, active)

	pending := metav1.Condition{Type: qjv1.ConditionRunPending, Status: metav1.ConditionFalse, Reason: qjv1.ReasonNoTrigger, Message: "no trigger is waiting"}
	if request, _, ok := pendingRun(qjob, configChange, lastNumber(last)); ok && active.Status == metav1.ConditionTrue {
		pending.Status, pending.Reason = metav1.ConditionTrue, qjv1.ReasonWaitingForActiveRun
		pending.Message = "run " + strconv.FormatInt(request.Run, 10) + " (trigger " + string(request.By) + ") starts when the active run ends"
	}
	meta.SetStatusCondition(&status.Conditions, pending)

	if meta.FindStatusCondition(status.Conditions, qjv1.ConditionLastRunSucceeded) == nil {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: qjv1.ConditionLastRunSucceeded, Status: metav1.ConditionUnknown,
			Reason: qjv1.ReasonNoRunFinished, Message: "no run has finished yet"})
	}
	for i := range status.Conditions {
		status.Conditions[i].ObservedGeneration = qjob.Generation
		if status.Conditions[i].LastTransitionTime.IsZero() {
			status.Conditions[i].LastTransitionTime = now
		}
	}
}

// pendingRun is the run that waits to start after the newest recorded one:
// an accepted trigger's, recorded in the annotations, or else the run a
// settled configuration change asks for (byConfigChange).
func pendingRun(qjob *qjv1.QuarksJob, configChange *qjv1.RunRequest, newest int64) (request qjv1.RunRequest, byConfigChange, ok bool) {
	if request, ok, err := qjv1.RunRequestOf(qjob.Annotations); err == nil && ok && request.Run > newest {
		return request, false, true
	}
	if configChange != nil && configChange.Run > newest {
		return *configChange, true, true
	}
	return qjv1.RunRequest{}, false, false
}

// transition is a run reaching a result.
type transition struct {
	run    *qjv1.Run
	result qjv1.RunResult
}

// transitions lists the run transitions between two recorded newest runs:
// a run that started, and a run that finished (possibly the same one).
func transitions(before, after *qjv1.Run) []transition {
	if after == nil {
		return nil
	}
	var ts []transition
	isNew := before == nil || after.Number > before.Number
	if isNew && after.StartTime != nil {
		ts = append(ts, transition{after, qjv1.RunRunning})
	}
	if after.Result != qjv1.RunRunning && (isNew || before.Result == qjv1.RunRunning) {
		ts = append(ts, transition{after, after.Result})
	}
	return ts
}
