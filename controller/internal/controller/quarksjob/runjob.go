package quarksjob

import (
	"context"
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/validation"
	"code.cloudfoundry.org/quarks-job/controller/internal/metrics"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
)

// start creates the requested run's Job. It decides on current data: unless
// qjob came back from a checked write in this reconcile, it is read again
// from the API server, because a stale status could show a run that already
// finished (and whose Job was deleted) as not yet started.
func (r *Reconciler) start(ctx context.Context, qjob *qjv1.QuarksJob, fresh bool, obs *observation) error {
	if !fresh {
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(qjob), qjob); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	last := qjob.Status.LastRun
	if !idle(last) {
		return nil
	}
	var change *qjv1.RunRequest
	if obs.configChange != nil && configChangeStillDue(qjob, obs) {
		change = obs.configChange
	}
	request, configChange, ok := pendingRun(qjob, change, lastNumber(last))
	if !ok {
		return nil
	}

	in, err := r.readInputs(ctx, qjob, true)
	if err != nil {
		return err
	}
	if next := lastNumber(last) + 1; request.Run > next {
		// An interrupted reconcile may have created run next's Job and not
		// recorded it: that run comes first.
		var skipped bool
		if skipped, err = r.recoverRun(ctx, qjob, next, in, obs); err != nil || !skipped {
			return err
		}
	}
	if configChange && in.hash == seenHash(qjob) {
		// The data went back to what the newest run saw.
		return nil
	}
	if len(in.missing) > 0 {
		// Held until they exist; their creation brings the QuarksJob back.
		obs.waitingFor = in.missing
		return nil
	}
	run := runs.Run{Number: request.Run, By: request.By, InputsHash: in.hash, Renames: in.renames}
	defaulted := qjob.DeepCopy()
	validation.Default(defaulted)
	if errs := validation.QuarksJob(defaulted); len(errs) > 0 {
		// Admitted without the webhook's check (it was down, or the
		// QuarksJob is older than a rule): the run fails with the message
		// admission would have given, and the request is consumed.
		obs.startFailure = &startFailure{run: run, jobName: runs.JobName(qjob.Name, run.Number),
			reason: "the QuarksJob is invalid, no Job was created: " + apierrors.NewInvalid(
				qjv1.GroupVersion.WithKind("QuarksJob").GroupKind(), qjob.Name, errs).Error()}
		return nil
	}
	job, err := runs.NewJob(qjob, run)
	adopted := false
	if err == nil {
		err = r.Client.Create(ctx, job)
		if apierrors.IsAlreadyExists(err) {
			job, adopted, err = r.nameTaken(ctx, qjob, job)
		}
	}
	switch {
	case err == nil:
		obs.jobs = append(obs.jobs, *job)
		obs.started = &startedRun{run: run, job: job}
		if !request.At.IsZero() && !adopted {
			metrics.TriggerToJob.WithLabelValues(string(request.By)).Observe(r.Now().Sub(request.At).Seconds())
		}
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err):
		// Retrying cannot help: the run fails, and the request is consumed.
		obs.startFailure = &startFailure{run: run, jobName: job.Name, reason: "the Job could not be created: " + err.Error()}
	default:
		return fmt.Errorf("creating Job %s: %w", job.Name, err)
	}
	return nil
}

// recoverRun looks for run n's Job when a later run is requested: an
// interrupted reconcile may have created it without recording it. When the
// Job is there and provably the controller's (runs.Unrecorded), it becomes
// the started run. It returns skipped when run n has no Job of the
// controller's, so the requested run may start.
func (r *Reconciler) recoverRun(ctx context.Context, qjob *qjv1.QuarksJob, n int64, in inputs, obs *observation) (skipped bool, err error) {
	jobs, err := r.runJobs(ctx, qjob, n)
	if err != nil {
		return false, err
	}
	for i := range jobs {
		existing := &jobs[i]
		by := qjv1.RunTrigger(existing.Annotations[qjv1.AnnotationRunTrigger])
		if by != qjv1.RunTriggerNow && by != qjv1.RunTriggerOnce {
			by = qjv1.RunTriggerConfigChange
		}
		run := runs.Run{Number: n, By: by, InputsHash: existing.Annotations[qjv1.AnnotationInputsHash], Renames: in.renames}
		expected, err := runs.NewJob(qjob, run)
		if err != nil {
			return false, err
		}
		if why := runs.Unrecorded(existing, expected, qjob.UID); why != "" {
			r.warnForeignJob(qjob, existing, why)
			continue
		}
		obs.jobs = append(obs.jobs, *existing)
		obs.started = &startedRun{run: run, job: existing}
		return false, nil
	}
	return true, nil
}

// nameTaken is start's answer when the name of the run's Job (runs.JobName)
// is taken: an interrupted reconcile created the Job and did not record it,
// or someone else took the name, which anyone who may create Jobs can do
// for every run to come. The controller's Job of the run, whatever its
// name, is adopted; else the taker's Job is reported (an Event) and left
// alone, and the run's Job is created under a name the API server draws at
// random (runs.GeneratedJobNamePrefix), which no one can take beforehand.
func (r *Reconciler) nameTaken(ctx context.Context, qjob *qjv1.QuarksJob, job *batchv1.Job) (_ *batchv1.Job, adopted bool, _ error) {
	n, err := strconv.ParseInt(job.Labels[qjv1.LabelRun], 10, 64)
	if err != nil {
		return job, false, fmt.Errorf("run label of Job %s: %w", job.Name, err)
	}
	mine, err := r.runJobs(ctx, qjob, n)
	if err != nil {
		return job, false, err
	}
	for i := range mine {
		if runs.Unrecorded(&mine[i], job, qjob.UID) == "" {
			return &mine[i], true, nil
		}
	}
	taken := &batchv1.Job{}
	switch err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(job), taken); {
	case err == nil:
		r.warnForeignJob(qjob, taken, runs.Unrecorded(taken, job, qjob.UID))
	case !apierrors.IsNotFound(err):
		return job, false, err
	}
	job.GenerateName, job.Name = runs.GeneratedJobNamePrefix(qjob.Name, n), ""
	return job, false, r.Client.Create(ctx, job)
}

// runJobs lists, from the API server, the Jobs that qjob controls and that
// are labeled as its run n: run n's Job has the derived name, or a random
// one when that was taken (nameTaken), so a name proves nothing either way.
// A decision to create a run's Job is never made on a stale cache.
func (r *Reconciler) runJobs(ctx context.Context, qjob *qjv1.QuarksJob, n int64) ([]batchv1.Job, error) {
	list := &batchv1.JobList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(qjob.Namespace),
		client.MatchingLabels{qjv1.LabelQJobName: runs.LabelValue(qjob.Name), qjv1.LabelRun: strconv.FormatInt(n, 10)}); err != nil {
		return nil, fmt.Errorf("listing the Jobs of run %d: %w", n, err)
	}
	jobs := list.Items[:0]
	for _, job := range list.Items {
		if ownedBy(&job, qjob) {
			jobs = append(jobs, job)
		}
	}
	return jobs, nil
}

// jobExists reports whether run n of qjob has a Job that qjob controls.
func (r *Reconciler) jobExists(ctx context.Context, qjob *qjv1.QuarksJob, n int64) (bool, error) {
	jobs, err := r.runJobs(ctx, qjob, n)
	return len(jobs) > 0, err
}
