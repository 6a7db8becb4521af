package runs

import (
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/text"
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
	// Awaiting names the pods whose uploads the controller holds until the
	// kubelet reports their exit codes, when the Job ended and they may
	// change the outcome (output missing from a completed Job, or the output
	// of a failed Job with writeOnFailure): the run is still Running,
	// CompletionTime is the Job's, and Failure is the run's message should
	// they never come.
	Awaiting []string
	Failure  string
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
				o.checkOutput(job, run.Uploads)
			}
			if o.Result == qjv1.RunFailed {
				o.await(run, "the job completed")
			}
			return o
		case batchv1.JobFailed:
			o.Result, o.Message = qjv1.RunFailed, describe("the job failed", c.Reason, c.Message)
			o.CompletionTime = completionTime(job, c)
			if o.Output != nil && len(o.Output.Problems) > 0 {
				o.Message += "; output: " + listed(o.Output.Problems)
			}
			if o.DeclaresOutput && run.Output.WriteOnFailure {
				o.await(run, "the job failed")
			}
			return o
		}
	}
	return o
}

// Completed reports whether the Job says it completed: the Job controller's
// count of the pods that claim it, which runs.Unproven checks.
func Completed(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// await keeps a run that just ended Running while uploads of its pods wait
// for their exit codes: they may still be persisted.
func (o *Outcome) await(run *qjv1.Run, ended string) {
	awaiting := pendingPods(run.Uploads)
	if len(awaiting) == 0 {
		return
	}
	o.Failure = o.Message
	o.Result, o.Awaiting = qjv1.RunRunning, awaiting
	o.Message = ended + "; waiting for the kubelet's exit codes to persist the output of " + listed(awaiting)
}

// pendingPods are the pods whose uploads wait for their exit codes.
func pendingPods(uploads []qjv1.OutputUpload) []string {
	var pods []string
	for _, u := range uploads {
		if u.Pending {
			pods = append(pods, "pod "+u.Pod)
		}
	}
	return pods
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
			combined.Persisted, combined.Pod, combined.Secrets, combined.SecretCount = true, u.Pod, u.Secrets, u.SecretCount
		}
	}
	for _, u := range uploads {
		if !combined.Persisted || u.Pod == combined.Pod {
			combined.Problems = append(combined.Problems, u.Problems...)
		}
	}
	if !combined.Persisted {
		last := uploads[len(uploads)-1]
		combined.Pod, combined.Secrets, combined.SecretCount = last.Pod, last.Secrets, last.SecretCount
	}
	return combined
}

// checkOutput turns a completed run into a failed one unless every pod that
// had to succeed persisted its declared output: the pod of each completed
// index of an Indexed Job, else as many pods as the Job counts succeeded.
// The message names what is missing.
func (o *Outcome) checkOutput(job *batchv1.Job, uploads []qjv1.OutputUpload) {
	if missing := missingOutput(job, uploads); len(missing) > 0 {
		o.Result, o.Message = qjv1.RunFailed, "the job completed but its output was not persisted: "+listed(missing)
		return
	}
	if len(o.Output.Problems) > 0 {
		o.Message = "the job completed; output: " + listed(o.Output.Problems)
	}
}

// maxListed and maxMessage bound a run's message (a condition's message may
// hold 32 kB): a run of thousands of pods or files names the first few
// problems and counts the rest; the uploads in the record hold more.
const (
	maxListed  = 10
	maxMessage = 4096
)

// listed joins items with "; ", at most maxListed of them and maxMessage
// bytes, and says how many more there are.
func listed(items []string) string { return text.List(items, "; ", maxListed, maxMessage) }

// done reports whether an upload shows its pod did its part: every declaring
// container exited 0 and its output was persisted.
func done(u qjv1.OutputUpload) bool { return u.Succeeded && u.Persisted }

// missingOutput lists, for the pods a completed Job needed, the output that
// was not persisted.
func missingOutput(job *batchv1.Job, uploads []qjv1.OutputUpload) []string {
	if job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion {
		var missing []string
		for _, index := range completedIndexes(job) {
			var tried []qjv1.OutputUpload
			ok := false
			for _, u := range uploads {
				if u.Index != nil && *u.Index == index {
					ok = ok || done(u)
					tried = append(tried, u)
				}
			}
			switch {
			case ok:
			case len(tried) == 0:
				missing = append(missing, fmt.Sprintf("index %d: no upload was received from its pod", index))
			default:
				last := tried[len(tried)-1]
				missing = append(missing, fmt.Sprintf("index %d (pod %s): %s", index, last.Pod, describeUpload(last)))
			}
		}
		return missing
	}

	required := max(int(job.Status.Succeeded), 1)
	var good int
	var failed []qjv1.OutputUpload
	for _, u := range uploads {
		if done(u) {
			good++
		} else {
			failed = append(failed, u)
		}
	}
	switch {
	case good >= required:
		return nil
	case len(uploads) == 0:
		return []string{"no upload was received from the persister"}
	case required == 1 && len(failed) > 0:
		return []string{describeUpload(failed[len(failed)-1])}
	}
	missing := []string{fmt.Sprintf("%d of the %d pods that succeeded persisted their output", good, required)}
	for _, u := range failed {
		missing = append(missing, fmt.Sprintf("pod %s: %s", u.Pod, describeUpload(u)))
	}
	return missing
}

func describeUpload(u qjv1.OutputUpload) string {
	switch {
	case len(u.Problems) > 0:
		return listed(u.Problems)
	case !u.Succeeded:
		return "a container that declares output did not exit with code 0"
	default:
		return "its output was not persisted"
	}
}

// completedIndexes are the indexes the Job completed, from its status
// ("0-2,4"), or every index below its completions when the status has none.
func completedIndexes(job *batchv1.Job) []int32 {
	var indexes []int32
	for _, part := range strings.Split(job.Status.CompletedIndexes, ",") {
		if part == "" {
			continue
		}
		first, last, isRange := strings.Cut(part, "-")
		lo, err1 := strconv.ParseInt(first, 10, 32)
		hi, err2 := lo, error(nil)
		if isRange {
			hi, err2 = strconv.ParseInt(last, 10, 32)
		}
		if err1 != nil || err2 != nil || hi < lo {
			continue
		}
		for i := lo; i <= hi; i++ {
			indexes = append(indexes, int32(i)) //nolint:gosec // G115: ParseInt(…, 10, 32) keeps i within int32
		}
	}
	if len(indexes) == 0 && job.Spec.Completions != nil {
		for i := range *job.Spec.Completions {
			indexes = append(indexes, i)
		}
	}
	return indexes
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
