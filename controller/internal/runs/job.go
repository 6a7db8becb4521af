package runs

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/validation"
	"code.cloudfoundry.org/quarks-job/controller/internal/references"
)

// Run is what a new run's Job is made of besides the QuarksJob.
type Run struct {
	Number     int64
	By         qjv1.RunTrigger
	InputsHash string
	// Renames maps referenced versioned Secret names to the newest version.
	Renames map[string]string
}

// NewJob returns run's Job for qjob: the template's Job with its labels and
// annotations, the run's labels on the Job and its pods, the declared output
// files on the pods, and qjob as controlling owner. The Job is created
// suspended: its pods start only when the controller has recorded the Job's
// UID in the QuarksJob's status and resumes it (see docs/runs.md).
//
// Reserved labels and annotations (qjv1.ReservedRunLabels,
// ReservedRunAnnotations) in the template are dropped: only the controller
// sets them. The QuarksJob validation warns about them.
func NewJob(qjob *qjv1.QuarksJob, run Run) (*batchv1.Job, error) {
	// The defaults admission sets, for QuarksJobs admitted without the webhook.
	qjob = qjob.DeepCopy()
	validation.Default(qjob)
	template := &qjob.Spec.Template
	runLabels := map[string]string{
		qjv1.LabelQJobName: LabelValue(qjob.Name),
		qjv1.LabelRun:      strconv.FormatInt(run.Number, 10),
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        JobName(qjob.Name, run.Number),
			Namespace:   qjob.Namespace,
			Labels:      merge(withoutReserved(template.Labels), runLabels),
			Annotations: merge(withoutReserved(template.Annotations), map[string]string{qjv1.AnnotationRunTrigger: string(run.By)}),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         qjv1.GroupVersion.String(),
				Kind:               "QuarksJob",
				Name:               qjob.Name,
				UID:                qjob.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		// Job spec fields the original QuarksJob took directly under the
		// template count where the spec leaves them unset.
		Spec: template.JobSpec(),
	}
	job.Spec.Suspend = ptr.To(true)
	// Kubernetes would delete a finished Job after ttlSecondsAfterFinished,
	// maybe before the controller has read its outcome. The controller
	// deletes a run's Job itself once the run's record holds its result.
	job.Spec.TTLSecondsAfterFinished = nil
	if run.InputsHash != "" {
		job.Annotations[qjv1.AnnotationInputsHash] = run.InputsHash
	}

	pod := &job.Spec.Template
	pod.Labels = merge(withoutReserved(pod.Labels), runLabels)
	pod.Annotations = withoutReserved(pod.Annotations)
	references.Rename(&pod.Spec, run.Renames)

	if output := qjob.Spec.Output; output != nil && len(output.OutputMap) > 0 {
		files, err := json.Marshal(output.OutputMap.Files())
		if err != nil {
			return nil, fmt.Errorf("listing the output files: %w", err)
		}
		pod.Annotations[qjv1.AnnotationOutputFiles] = string(files)
	}
	return job, nil
}

// withoutReserved returns a copy of m without the reserved run labels and
// annotations.
func withoutReserved(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if !slices.Contains(qjv1.ReservedRunLabels, k) && !slices.Contains(qjv1.ReservedRunAnnotations, k) {
			out[k] = v
		}
	}
	return out
}

// RunNumber is the run number of one of a QuarksJob's Jobs, from its label.
func RunNumber(job *batchv1.Job) (int64, bool) {
	n, err := strconv.ParseInt(job.Labels[qjv1.LabelRun], 10, 64)
	return n, err == nil && n > 0
}

// merge returns a new map with the entries of base overridden by those of extra.
func merge(base, extra map[string]string) map[string]string {
	merged := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		merged[k] = v
	}
	for k, v := range extra {
		merged[k] = v
	}
	return merged
}
