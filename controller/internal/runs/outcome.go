package runs

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// Outcome is what a run's Job and the run's record say about the run.
type Outcome struct {
	Result         qjv1.RunResult
	Message        string
	CompletionTime *metav1.Time
	// DeclaresOutput is true when the run's record snapshotted an output spec.
	DeclaresOutput bool
	// Output combines what the output endpoint recorded for the run's pods;
	// nil when no pod uploaded.
	Output *upload.Result
}

// OutcomeOf reads a run's Job together with the run's record, which holds
// the output spec and the uploads (only the controller writes them). A Job
// that completed but whose declared output was not persisted is a failed
// run: its result is not what the user asked for.
func OutcomeOf(job *batchv1.Job, run *qjv1.Run) Outcome {
	o := Outcome{Result: qjv1.RunRunning}
	if run != nil {
		o.DeclaresOutput = run.Output != nil && len(run.Output.OutputMap) > 0
		o.Output = combine(run.Uploads)
	}

	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			o.Result, o.Message = qjv1.RunSucceeded, "the job completed"
			o.CompletionTime = completionTime(job, c)
			if o.DeclaresOutput {
				o.checkOutput()
			}
			return o
		case batchv1.JobFailed:
			o.Result, o.Message = qjv1.RunFailed, describe("the job failed", c.Reason, c.Message)
			o.CompletionTime = completionTime(job, c)
			if o.Output != nil && len(o.Output.Problems) > 0 {
				o.Message += "; output: " + strings.Join(o.Output.Problems, "; ")
			}
			return o
		}
	}
	return o
}

// combine merges the uploads of a run's pods: a persisted upload stands for
// the run (the Job completed through that pod); the problems of the others
// are reported with it.
func combine(uploads []qjv1.OutputUpload) *upload.Result {
	if len(uploads) == 0 {
		return nil
	}
	combined := &upload.Result{}
	for _, u := range uploads {
		if u.Persisted && !combined.Persisted {
			combined.Persisted, combined.Pod, combined.Secrets = true, u.Pod, u.Secrets
		}
	}
	for _, u := range uploads {
		if !combined.Persisted || u.Pod == combined.Pod {
			combined.Problems = append(combined.Problems, u.Problems...)
		}
	}
	if !combined.Persisted {
		last := uploads[len(uploads)-1]
		combined.Pod, combined.Secrets = last.Pod, last.Secrets
	}
	return combined
}

// checkOutput turns a succeeded run whose declared output was not persisted
// into a failed one.
func (o *Outcome) checkOutput() {
	switch {
	case o.Output == nil:
		o.Result, o.Message = qjv1.RunFailed, "the job completed but its output was not persisted: no upload was received from the persister"
	case !o.Output.Persisted:
		o.Result, o.Message = qjv1.RunFailed, "the job completed but its output was not persisted: "+strings.Join(o.Output.Problems, "; ")
	case len(o.Output.Problems) > 0:
		o.Message = "the job completed; output: " + strings.Join(o.Output.Problems, "; ")
	}
}

func completionTime(job *batchv1.Job, c batchv1.JobCondition) *metav1.Time {
	if job.Status.CompletionTime != nil {
		return job.Status.CompletionTime.DeepCopy()
	}
	t := c.LastTransitionTime
	return &t
}

func describe(what, reason, message string) string {
	switch {
	case reason != "" && message != "":
		return fmt.Sprintf("%s (%s): %s", what, reason, message)
	case reason != "":
		return fmt.Sprintf("%s (%s)", what, reason)
	default:
		return what
	}
}
