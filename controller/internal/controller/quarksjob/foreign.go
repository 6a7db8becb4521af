package quarksjob

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// warnForeignJobs reports the running Jobs that claim this QuarksJob as
// controller but are no run of its: neither recorded nor started now. (A
// suspended one may be the controller's own from an interrupted reconcile;
// it runs nothing, and the next start proves or refuses it.)
func (r *Reconciler) warnForeignJobs(qjob *qjv1.QuarksJob, obs *observation) {
	last := qjob.Status.LastRun
	if last != nil && last.JobUID == "" {
		// Written before UIDs were recorded: older runs' Jobs are not told
		// apart from foreign ones.
		return
	}
	for i := range obs.jobs {
		job := &obs.jobs[i]
		switch {
		case last != nil && isRecorded(job, last):
		case obs.started != nil && obs.started.job.UID == job.UID:
		case job.Spec.Suspend != nil && *job.Spec.Suspend:
		default:
			r.warnForeignJob(qjob, job, "its UID is not recorded in the QuarksJob's status")
		}
	}
}

// warnForeignJob reports, once per Job, a Job that claims to be a run of
// qjob but that the controller did not create. It is left alone.
func (r *Reconciler) warnForeignJob(qjob *qjv1.QuarksJob, job *batchv1.Job, why string) {
	if _, seen := r.foreignJobs.LoadOrStore(job.UID, struct{}{}); seen {
		return
	}
	r.Recorder.Eventf(qjob, job, corev1.EventTypeWarning, qjv1.EventForeignJob, "IgnoreJob",
		"Job %s claims to be a run of this QuarksJob, but this controller did not create it (%s); it is ignored and left alone", job.Name, why)
}

// lookForLastJob makes sure obs holds the Job of the run the status shows
// running. When the cache lacks it, the API server decides whether the Job
// is gone (deleted by someone) or merely not in the cache yet.
func (r *Reconciler) lookForLastJob(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) error {
	last := qjob.Status.LastRun
	if last == nil || last.Result != qjv1.RunRunning || obs.recordedJob(last) != nil {
		return nil
	}
	job := &batchv1.Job{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: qjob.Namespace, Name: last.JobName}, job)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && !isRecorded(job, last)):
		obs.lastJobGone = true
		return nil
	case err != nil:
		return err
	}
	obs.jobs = append(obs.jobs, *job)
	return nil
}

// isRecorded reports whether job is the recorded run's Job: the one whose
// UID the record holds. A run that never started (its Job could not be
// created) has no Job. Records written by earlier versions, before UIDs
// were recorded, name their Job.
func isRecorded(job *batchv1.Job, run *qjv1.Run) bool {
	switch {
	case run.JobUID != "":
		return job.UID == run.JobUID
	case run.StartTime == nil:
		return false
	default:
		return job.Name == run.JobName
	}
}

func (r *Reconciler) jobsOf(ctx context.Context, qjob *qjv1.QuarksJob) ([]batchv1.Job, error) {
	list := &batchv1.JobList{}
	if err := r.Client.List(ctx, list, client.InNamespace(qjob.Namespace), client.MatchingFields{jobOwnerIndex: qjob.Name}); err != nil {
		return nil, fmt.Errorf("listing Jobs: %w", err)
	}
	jobs := list.Items[:0]
	for _, job := range list.Items {
		if ownedBy(&job, qjob) {
			jobs = append(jobs, job)
		}
	}
	return jobs, nil
}

func ownedBy(job *batchv1.Job, qjob *qjv1.QuarksJob) bool {
	owner := metav1.GetControllerOf(job)
	return owner != nil && owner.UID == qjob.UID
}
