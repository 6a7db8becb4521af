package quarksjob

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
)

// cleanup deletes the recorded run's Job once the record holds its result:
// when it succeeded, or when a newer run started (a failed run's Job stays
// for inspection until then). Only that Job is deleted, by its UID: Jobs the
// controller did not create are left alone.
func (r *Reconciler) cleanup(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) error {
	recorded := qjob.Status.LastRun
	if recorded == nil || recorded.Result == qjv1.RunRunning {
		return nil
	}
	if recorded.Result != qjv1.RunSucceeded && obs.started == nil {
		return nil
	}
	for i := range obs.jobs {
		job := &obs.jobs[i]
		if !isRecorded(job, recorded) || !job.DeletionTimestamp.IsZero() {
			continue
		}
		err := r.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &job.UID})
		if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting Job %s of a finished run: %w", job.Name, err)
		}
	}
	return nil
}

// settleJob makes the recorded run's Job match the record. It resumes the
// Job of a running run, which the controller created suspended: its pods
// start only once the QuarksJob's status holds the Job's UID, so every
// upload from them can be checked against it. It suspends the Job of a run
// that ended while its Job had not (its pods never started): nothing of an
// ended run goes on.
func (r *Reconciler) settleJob(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) error {
	last := qjob.Status.LastRun
	if last == nil || last.JobUID == "" {
		return nil
	}
	job := obs.recordedJob(last)
	if job == nil || !job.DeletionTimestamp.IsZero() {
		return nil
	}
	suspended := job.Spec.Suspend != nil && *job.Spec.Suspend
	var want bool
	switch {
	case last.Result == qjv1.RunRunning && suspended:
		want = false
	case last.Result != qjv1.RunRunning && !suspended && runs.OutcomeOf(job, nil).Result == qjv1.RunRunning:
		want = true
	default:
		return nil
	}
	err := r.Client.Patch(ctx, job, suspendPatch(job, want))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("setting suspend=%t on Job %s of run %d: %w", want, job.Name, last.Number, err)
	}
	return nil
}

// suspendPatch sets spec.suspend of job, only if it is still the same Job
// (its UID): a Job of the same name created meanwhile is someone else's.
func suspendPatch(job *batchv1.Job, suspend bool) client.Patch {
	return client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"suspend":%t}}`, job.UID, suspend))
}
