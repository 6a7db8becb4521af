package runs

import (
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Unproven says why a Job that reports completion did not provably complete
// through pods of its run, "" when it did. The Job controller counts every
// pod that names the Job as controller and carries its tracking finalizer,
// and whoever may create and patch pods can give a pod of its own all of
// that: so each completion the Job needed must have a succeeded pod that
// notRunPod (runpod.Check) accepts. pods are the pods labeled with the
// Job's UID.
func Unproven(job *batchv1.Job, pods []corev1.Pod, notRunPod func(*corev1.Pod) string) string {
	var refused []string
	good := map[string]int{} // index ("" when not Indexed) → succeeded run pods
	for i := range pods {
		pod := &pods[i]
		if pod.Status.Phase != corev1.PodSucceeded {
			continue
		}
		if why := notRunPod(pod); why != "" {
			refused = append(refused, fmt.Sprintf("pod %s is not a pod of this run: %s", pod.Name, why))
			continue
		}
		good[indexOf(job, pod)]++
	}
	var missing []string
	if job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion {
		for _, index := range completedIndexes(job) {
			if good[strconv.Itoa(int(index))] == 0 {
				missing = append(missing, fmt.Sprintf("index %d", index))
			}
		}
	} else if required := requiredCompletions(job); good[""] < required {
		missing = append(missing, fmt.Sprintf("%d of %d completions", required-good[""], required))
	}
	if len(missing) == 0 {
		return ""
	}
	msg := "the Job reports completion, but no pod of this run succeeded for " + listed(missing)
	if len(refused) > 0 {
		msg += "; " + listed(refused)
	}
	return msg
}

// requiredCompletions is how many pods of a NonIndexed Job must succeed:
// its completions, or one when any pod's success completes it.
func requiredCompletions(job *batchv1.Job) int {
	if job.Spec.Completions == nil {
		return 1
	}
	return int(*job.Spec.Completions)
}

// indexOf is a pod's completion index in an Indexed Job, "" otherwise.
func indexOf(job *batchv1.Job, pod *corev1.Pod) string {
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		return ""
	}
	return pod.Annotations[batchv1.JobCompletionIndexAnnotation]
}
