package quarksjob

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/runpod"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
)

// DefaultRunStartTimeout is how long a run's pods may take to start.
const DefaultRunStartTimeout = 5 * time.Minute

// +kubebuilder:rbac:groups="",resources=events,verbs=list

// checkStarted fails a running run none of whose pods started within the
// run start timeout: pods refused at admission, over quota, unschedulable,
// or waiting for an image that cannot be pulled would keep it Running
// forever. It sets obs.stuck to the reason the API gives, and returns when
// to look again while the run may still start. Pods and Events are read
// only once the timeout has passed.
func (r *Reconciler) checkStarted(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) (time.Duration, error) {
	last := qjob.Status.LastRun
	if last == nil || last.Result != qjv1.RunRunning || last.StartTime == nil {
		return 0, nil
	}
	job := obs.recordedJob(last)
	if job == nil || runs.OutcomeOf(job, last).Result != qjv1.RunRunning || job.Status.Succeeded+job.Status.Failed > 0 {
		return 0, nil
	}
	timeout := r.RunStartTimeout
	switch d := qjob.Spec.RunStartTimeout; {
	case d != nil && d.Duration > 0:
		timeout = d.Duration
	case timeout <= 0:
		timeout = DefaultRunStartTimeout
	}
	if wait := last.StartTime.Add(timeout).Sub(r.Now()); wait > 0 {
		return wait, nil
	}
	pods, err := r.podsOf(ctx, job)
	if err != nil {
		return 0, err
	}
	var waiting []string
	for i := range pods {
		pod := &pods[i]
		if why := runpod.Check(pod, job, r.PersisterImage); why != "" {
			waiting = append(waiting, fmt.Sprintf("pod %s is not a pod of this run: %s", pod.Name, why))
			continue
		}
		if started(pod) {
			return 0, nil
		}
		waiting = append(waiting, whyWaiting(pod))
	}
	if len(waiting) == 0 {
		reason, err := r.whyNoPod(ctx, job)
		if err != nil {
			return 0, err
		}
		waiting = append(waiting, reason)
	}
	obs.stuck = fmt.Sprintf("no pod of Job %s started within %s: %s", job.Name, timeout, strings.Join(waiting, "; "))
	return 0, nil
}

// proveCompletion checks, when the running run's Job reports completion
// (whether or not its output is in yet), that pods of the run made it
// complete (runs.Unproven); obs.unproven says why not. The Job's status is
// the Job controller's count of every pod that claims the Job, forged ones
// included.
func (r *Reconciler) proveCompletion(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) error {
	last := qjob.Status.LastRun
	if last == nil || last.Result != qjv1.RunRunning {
		return nil
	}
	job := obs.recordedJob(last)
	if job == nil || !runs.Completed(job) {
		return nil
	}
	pods, err := r.podsOf(ctx, job)
	if err != nil {
		return err
	}
	obs.unproven = runs.Unproven(job, pods, func(pod *corev1.Pod) string { return runpod.Check(pod, job, r.PersisterImage) })
	return nil
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=list

// podsOf lists the pods that claim job by its UID label, from the API
// server: a decision about the run's result is never made on a stale cache.
func (r *Reconciler) podsOf(ctx context.Context, job *batchv1.Job) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{batchv1.ControllerUidLabel: string(job.UID)}); err != nil {
		return nil, fmt.Errorf("listing the pods of Job %s: %w", job.Name, err)
	}
	return pods.Items, nil
}

// started reports whether a pod got past creating its containers.
func started(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodPending {
		return true
	}
	// Pending, and the kubelet may report the phase late: started once every
	// container has run. A pod with one container running and another
	// waiting for its image has not started; its run would never end.
	if len(pod.Status.ContainerStatuses) < len(pod.Spec.Containers) {
		return false
	}
	for _, c := range pod.Status.ContainerStatuses {
		if c.State.Running == nil && c.State.Terminated == nil {
			return false
		}
	}
	return true
}

// whyWaiting says what holds a pending pod.
func whyWaiting(pod *corev1.Pod) string {
	for _, statuses := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, c := range statuses {
			if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
				return fmt.Sprintf("pod %s: container %s is waiting (%s): %s", pod.Name, c.Name, w.Reason, w.Message)
			}
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return fmt.Sprintf("pod %s is not scheduled (%s): %s", pod.Name, c.Reason, c.Message)
		}
	}
	return fmt.Sprintf("pod %s is pending", pod.Name)
}

// whyNoPod reads the Job controller's newest FailedCreate Event about the
// Job: the API's answer to its pod (admission refused, quota, missing
// service account).
func (r *Reconciler) whyNoPod(ctx context.Context, job *batchv1.Job) (string, error) {
	events := &corev1.EventList{}
	if err := r.APIReader.List(ctx, events, client.InNamespace(job.Namespace),
		client.MatchingFields{"involvedObject.uid": string(job.UID), "reason": "FailedCreate"}); err != nil {
		return "", fmt.Errorf("listing the Events of Job %s: %w", job.Name, err)
	}
	if len(events.Items) == 0 {
		return "no pod was created", nil
	}
	sort.Slice(events.Items, func(i, j int) bool { return eventTime(&events.Items[i]).Before(eventTime(&events.Items[j])) })
	return "the Job's pods could not be created: " + events.Items[len(events.Items)-1].Message, nil
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// soonest is the earlier of two requeue delays, 0 meaning none.
func soonest(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
