package outputendpoint

import (
	"context"
	"net/http"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/runpod"
)

// origin is the pod an upload came from, its Job, its QuarksJob, and the run
// record that makes the Job a run: the QuarksJob status's lastRun.
type origin struct {
	pod    *corev1.Pod
	job    *batchv1.Job
	qjob   *qjv1.QuarksJob
	record *qjv1.Run
}

// resolve finds the run an authenticated pod belongs to. The pod's and the
// Job's controller references only say where to look: whoever creates a Job
// or a pod writes them. What makes the pod a run's is the QuarksJob's status,
// which only the controller writes: its current run's record must hold the
// UID of the Job that controls the pod, and the pod must be what the Job
// controller and the webhook make of that Job's template (runpod.Check).
func (h *handler) resolve(ctx context.Context, ref podRef) (*origin, error) {
	if h.watches != nil {
		watched, err := h.watches(ctx, ref.Namespace)
		if err != nil {
			return nil, refuse(http.StatusServiceUnavailable, "checking namespace %s: %v", ref.Namespace, err)
		}
		if !watched {
			return nil, refuse(http.StatusForbidden, "namespace %s is not watched by this operator", ref.Namespace)
		}
	}
	pod := &corev1.Pod{}
	if err := h.get(ctx, ref.Namespace, ref.Name, pod, "pod"); err != nil {
		return nil, err
	}
	if pod.UID != ref.UID {
		return nil, refuse(http.StatusForbidden, "pod %s/%s is not the pod the token was issued for", ref.Namespace, ref.Name)
	}
	jobRef := metav1.GetControllerOf(pod)
	if jobRef == nil || jobRef.Kind != "Job" || jobRef.APIVersion != batchv1.SchemeGroupVersion.String() {
		return nil, refuse(http.StatusForbidden, "pod %s/%s is not controlled by a Job", ref.Namespace, ref.Name)
	}
	job := &batchv1.Job{}
	if err := h.get(ctx, ref.Namespace, jobRef.Name, job, "job"); err != nil {
		return nil, err
	}
	if job.UID != jobRef.UID {
		return nil, refuse(http.StatusForbidden, "Job %s/%s of pod %s is not the one the pod belongs to", ref.Namespace, jobRef.Name, ref.Name)
	}
	qjobRef := metav1.GetControllerOf(job)
	if qjobRef == nil || qjobRef.Kind != "QuarksJob" || qjobRef.APIVersion != qjv1.GroupVersion.String() {
		return nil, refuse(http.StatusForbidden, "Job %s/%s of pod %s is not controlled by a QuarksJob", ref.Namespace, job.Name, ref.Name)
	}
	qjob := &qjv1.QuarksJob{}
	if err := h.get(ctx, ref.Namespace, qjobRef.Name, qjob, "QuarksJob"); err != nil {
		return nil, err
	}
	if qjob.UID != qjobRef.UID {
		return nil, refuse(http.StatusForbidden, "QuarksJob %s/%s is not the one Job %s belongs to", ref.Namespace, qjobRef.Name, job.Name)
	}
	record, err := currentRun(qjob, job)
	if err != nil {
		return nil, err
	}
	if why := runpod.Check(pod, job, h.persisterImage); why != "" {
		return nil, refuse(http.StatusForbidden, "pod %s/%s is not a pod of run %d of QuarksJob %s: %s", ref.Namespace, ref.Name, record.Number, qjob.Name, why)
	}
	return &origin{pod: pod, job: job, qjob: qjob, record: record}, nil
}

// currentRun returns the QuarksJob's record of the run whose Job is job. Only
// the newest run, while it runs, accepts uploads: a late upload of an older
// run never overwrites the output of a newer one.
func currentRun(qjob *qjv1.QuarksJob, job *batchv1.Job) (*qjv1.Run, error) {
	last := qjob.Status.LastRun
	switch {
	case last == nil || last.JobUID == "":
		return nil, refuse(http.StatusForbidden, "Job %s/%s is not the Job of a run of QuarksJob %s: no run with a recorded Job", job.Namespace, job.Name, qjob.Name)
	case last.JobUID != job.UID && last.JobName == job.Name:
		return nil, refuse(http.StatusForbidden, "Job %s/%s (uid %s) is not the Job the controller created for run %d of QuarksJob %s", job.Namespace, job.Name, job.UID, last.Number, qjob.Name)
	case last.JobUID != job.UID:
		return nil, refuse(http.StatusConflict, "Job %s/%s is not the Job of the current run %d of QuarksJob %s (%s): its upload is too late or forged", job.Namespace, job.Name, last.Number, qjob.Name, last.JobName)
	case last.Result != qjv1.RunRunning:
		return nil, refuse(http.StatusConflict, "run %d of QuarksJob %s has already ended (%s)", last.Number, qjob.Name, last.Result)
	}
	return last, nil
}

// get reads from the API server; NotFound refuses the upload.
func (h *handler) get(ctx context.Context, namespace, name string, obj client.Object, kind string) error {
	err := h.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return refuse(http.StatusForbidden, "%s %s/%s does not exist", kind, namespace, name)
	case err != nil:
		return refuse(http.StatusServiceUnavailable, "reading %s %s/%s: %v", kind, namespace, name, err)
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
