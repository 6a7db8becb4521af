package outputendpoint

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
	"code.cloudfoundry.org/quarks-job/controller/internal/secretwriter"
)

// outputSpec is the spec the controller snapshotted in the run's record when
// it created the Job: nothing on the Job or pod decides what is written.
// Nothing declared: every uploaded file is ignored.
func outputSpec(run *origin) *qjv1.Output {
	if run.record.Output == nil {
		return &qjv1.Output{}
	}
	return run.record.Output
}

// persist validates the upload against the Job's snapshotted output spec and
// the containers' states (waitErr says why some are not known yet), writes
// the Secrets, records the Result in the run's record and emits Events. A held upload
// (see held.go) is recorded as pending rather than asked to be retried.
func (h *handler) persist(ctx context.Context, log logr.Logger, run *origin, req *upload.Request,
	states map[string]output.ContainerState, waitErr error, held bool) outcome {
	result := upload.Result{Pod: run.pod.Name, Index: completionIndex(run.pod)}
	var retry string
	var notices notices
	defer func() { h.emit(run, notices) }()

	if prior := recordedDone(run); prior != nil {
		// Written already (a retry whose answer was lost, a held copy):
		// writing again would add a version.
		return outcome{result: *prior}
	}
	spec := outputSpec(run)
	switch {
	case waitErr != nil && held:
		result.Pending = true
	case waitErr != nil:
		retry = waitErr.Error()
	}
	plan := output.Compute(spec, req, states, h.limits.maxSecrets)
	result.Succeeded = output.AllExitedZero(spec, states)
	for _, p := range plan.Problems {
		result.Problems = append(result.Problems, p.Message)
		if p.Reason != qjv1.EventExitCodeUnknown { // transient: the persister retries
			notices.add(eventType(p), p.Reason, p.Message)
		}
	}
	failed := plan.Blocked()
	for i := range plan.Secrets {
		markRun(&plan.Secrets[i], run.record.Number, run.pod.UID)
	}
	for i, w := range h.writeAll(ctx, run.qjob, plan.Secrets) {
		s, written, adopted, err := plan.Secrets[i], w.written, w.adopted, w.err
		switch {
		case err == nil:
			result.Secrets = append(result.Secrets, written)
			if adopted {
				notices.add(corev1.EventTypeNormal, qjv1.EventSecretAdopted, fmt.Sprintf(
					"took over Secret %s, written by the original quarks-job for container %q: now this QuarksJob's output", written.Name, s.Container))
			}
			continue
		case secretwriter.IsNotOwned(err):
			msg := fmt.Sprintf("output file %q of container %q: %v", s.File, s.Container, err)
			result.Problems = append(result.Problems, msg)
			notices.add(corev1.EventTypeWarning, qjv1.EventSecretNotOwned, msg)
		default:
			msg := fmt.Sprintf("output file %q of container %q: %v", s.File, s.Container, err)
			result.Problems = append(result.Problems, msg)
			notices.add(corev1.EventTypeWarning, qjv1.EventSecretWriteFailed, msg)
			retry = "writing Secrets failed"
		}
		failed = true
	}
	result.Persisted = !failed
	if result.Persisted && len(result.Secrets) > 0 {
		notices.add(corev1.EventTypeNormal, qjv1.EventOutputPersisted, fmt.Sprintf("persisted output of pod %s: %s", run.pod.Name, secretNames(result.Secrets)))
	}

	if err := h.recordResult(ctx, run, result); err != nil {
		log.Error(err, "recording the output result in the run's record")
		retry = fmt.Sprintf("recording the result on Job %s failed: %v", run.job.Name, err)
	}
	return outcome{result: result, retry: retry}
}

// markRun annotates the Secret with the run and the pod that write it, over
// any annotations of those names the output spec asks for.
func markRun(s *output.Secret, number int64, pod types.UID) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[qjv1.AnnotationOutputRun] = strconv.FormatInt(number, 10)
	s.Annotations[qjv1.AnnotationOutputPod] = string(pod)
}

// writeConcurrency bounds the Secrets one upload writes at once: a fan-out
// of thousands of Secrets is written in seconds, within the persister's
// attempt timeout, rather than one API round trip after the other.
const writeConcurrency = 32

type writeResult struct {
	written qjv1.OutputSecret
	adopted bool
	err     error
}

// writeAll writes the Secrets, writeConcurrency at a time, and returns the
// result of each in their order. Within one upload every Secret has its own
// name; the writer serializes writers of one name across uploads.
func (h *handler) writeAll(ctx context.Context, qjob *qjv1.QuarksJob, secrets []output.Secret) []writeResult {
	results := make([]writeResult, len(secrets))
	slots := make(chan struct{}, writeConcurrency)
	writes := h.limits.writes(qjob.Namespace)
	var wg sync.WaitGroup
	for i := range secrets {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			r := &results[i]
			if r.err = writes.Wait(ctx); r.err != nil {
				r.err = fmt.Errorf("waiting for namespace %s's share of Secret writes: %w", qjob.Namespace, r.err)
				return
			}
			r.written, r.adopted, r.err = h.writer.Write(ctx, qjob, secrets[i])
		})
	}
	wg.Wait()
	return results
}

// waitForExitCodes reads the pod from the API server until the kubelet has
// reported the exit code of every declaring container, or the timeout.
func (h *handler) waitForExitCodes(ctx context.Context, run *origin, spec *qjv1.Output) (map[string]output.ContainerState, error) {
	deadline := time.Now().Add(h.exitCodeTimeout)
	delay := 100 * time.Millisecond
	pod := run.pod
	for {
		states := containerStates(pod, run.job)
		waiting := output.ContainersAwaitingExit(spec, states)
		if len(waiting) == 0 {
			return states, nil
		}
		if time.Now().Add(delay).After(deadline) {
			return states, fmt.Errorf("the kubelet did not report the exit code of container(s) %s within %s", strings.Join(waiting, ", "), h.exitCodeTimeout)
		}
		select {
		case <-ctx.Done():
			return states, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
		fresh := &corev1.Pod{}
		if err := h.reader.Get(ctx, client.ObjectKeyFromObject(pod), fresh); err == nil && fresh.UID == pod.UID {
			pod = fresh
		}
	}
}

// completionIndex is the pod's completion index in an Indexed Job, which the
// Job controller annotates; nil for other pods.
func completionIndex(pod *corev1.Pod) *int32 {
	raw, ok := pod.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return nil
	}
	i, err := strconv.ParseInt(raw, 10, 32)
	if err != nil || i < 0 {
		return nil
	}
	index := int32(i)
	return &index
}

// containerStates reads the exit codes from the pod's status. Regular and
// init containers both count; the persister itself is never declared. The
// remote IDs come from the run's Job, which the controller created.
func containerStates(pod *corev1.Pod, job *batchv1.Job) map[string]output.ContainerState {
	remoteIDs := map[string]string{}
	for _, list := range [][]corev1.Container{job.Spec.Template.Spec.Containers, job.Spec.Template.Spec.InitContainers} {
		for i := range list {
			remoteIDs[list[i].Name] = qjv1.RemoteID(&list[i])
		}
	}
	states := map[string]output.ContainerState{}
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			states[c.Name] = output.ContainerState{InPod: true, RemoteID: remoteIDs[c.Name]}
		}
	}
	for _, statuses := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for _, st := range statuses {
			s, ok := states[st.Name]
			if !ok || st.State.Terminated == nil {
				continue
			}
			s.Terminated, s.ExitCode = true, st.State.Terminated.ExitCode
			states[st.Name] = s
		}
	}
	return states
}
