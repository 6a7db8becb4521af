package outputendpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/text"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/api/version"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
	"code.cloudfoundry.org/quarks-job/controller/internal/secretwriter"
)

// maxBodyBytes bounds a request: MaxRequestBytes of files, base64-encoded in
// JSON, and room for names.
const maxBodyBytes = upload.MaxRequestBytes/3*4 + 1<<20

// handler serves the output endpoint.
type handler struct {
	client          client.Client
	reader          client.Reader
	recorder        events.EventRecorder
	writer          *secretwriter.Writer
	exitCodeTimeout time.Duration
	log             logr.Logger
	// watches, when set, says whether a namespace's QuarksJobs are this
	// operator's; uploads from pods elsewhere are refused.
	watches func(ctx context.Context, namespace string) (bool, error)
	// persisterImage, when set, is the only image a run pod's persister
	// may run.
	persisterImage string
	// limits bounds the work and memory of concurrent uploads.
	limits *limits
	// issuer checks tokens against the service-account issuer's keys.
	issuer *issuer
	// holdNamespace is where uploads waiting for exit codes are held (see
	// held.go); none are held when it is empty.
	holdNamespace string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpFail(w, http.StatusMethodNotAllowed, "only POST is allowed")
		return
	}
	// Authenticate before reading the body: an unauthenticated client never
	// gets to make the controller parse megabytes.
	ref, err := h.authenticate(r.Context(), r)
	if err != nil {
		h.refused(w, r, podRef{}, err)
		return
	}
	log := h.log.WithValues("pod", ref.Namespace+"/"+ref.Name)
	run, err := h.resolve(r.Context(), ref)
	if err != nil {
		h.refused(w, r, ref, err)
		return
	}

	if speaks := r.Header.Get(upload.HeaderVersion); speaks != "" && speaks != upload.Version {
		h.unsupportedProtocol(w, r, log, run, speaks)
		return
	}

	// A retry of an upload the controller holds (its answer was lost) is
	// held again: the holder alone persists it, once.
	alreadyHeld := h.holdNamespace != "" && heldBefore(run)

	// The kubelet's report of the exit codes is awaited before the body is
	// admitted: the wait holds no share of the bytes in flight, so uploads
	// that wait do not keep others out.
	var states map[string]output.ContainerState
	var waitErr error
	if !alreadyHeld {
		states, waitErr = h.waitForExitCodes(r.Context(), run, outputSpec(run))
	}

	release, err := h.limits.admitBody(r.Context(), r)
	if err != nil {
		h.refused(w, r, ref, err)
		return
	}
	defer release()

	req, err := upload.DecodeRequest(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.refused(w, r, ref, refuse(http.StatusRequestEntityTooLarge, "upload is larger than %d bytes", maxBodyBytes))
			return
		}
		h.refused(w, r, ref, refuse(http.StatusBadRequest, "%v", err))
		return
	}

	// The work goes on if the persister hangs up: its Result must be recorded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.exitCodeTimeout+processingTimeout)
	defer cancel()
	if alreadyHeld {
		if err := h.hold(ctx, ref, req); err != nil {
			h.refused(w, r, ref, refuse(http.StatusServiceUnavailable, "holding the upload again: %v", err))
			return
		}
		log.Info("upload held again", "duration", time.Since(received).String())
		writeJSON(w, http.StatusOK, upload.Response{Problems: []string{heldNotice}})
		return
	}
	held := false
	if waitErr != nil && h.holdNamespace != "" {
		// The persister's time may end before the kubelet reports: the
		// controller keeps the upload and persists it then.
		if err := h.hold(ctx, ref, req); err != nil {
			log.Error(err, "holding an upload until its exit codes are known; the persister is asked to retry")
		} else {
			held = true
		}
	}
	outcome := h.persist(ctx, log, run, req, states, waitErr, held)
	observe(outcome, req, received)

	resp := upload.Response{Problems: outcome.result.Problems}
	for _, s := range outcome.result.Secrets {
		resp.Secrets = append(resp.Secrets, s.Name)
	}
	status := http.StatusOK
	if held {
		resp.Problems = append(resp.Problems, heldNotice)
	}
	if outcome.retry != "" {
		// Nothing the user can fix: the persister should try again.
		w.Header().Set("Retry-After", "2")
		status = http.StatusServiceUnavailable
		resp.Problems = append(resp.Problems, outcome.retry)
	}
	log.Info("upload handled", "status", status, "persisted", outcome.result.Persisted,
		"secrets", resp.Secrets, "problems", len(outcome.result.Problems), "duration", time.Since(received).String())
	writeJSON(w, status, resp)
}

// outcome is what persist did.
type outcome struct {
	result upload.Result
	// retry, when set, says why the upload must be sent again.
	retry string
}

// outputSpec is the spec the controller snapshotted in the run's record when
// it created the Job: nothing on the Job or pod decides what is written.
// Nothing declared: every uploaded file is ignored.
func outputSpec(run *run) *qjv1.Output {
	if run.record.Output == nil {
		return &qjv1.Output{}
	}
	return run.record.Output
}

// persist validates the upload against the Job's snapshotted output spec and
// the containers' states (waitErr says why some are not known yet), writes
// the Secrets, records the Result on the Job and emits Events. A held upload
// (see held.go) is recorded as pending rather than asked to be retried.
func (h *handler) persist(ctx context.Context, log logr.Logger, run *run, req *upload.Request,
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
	{
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
			if p.Reason != output.ReasonExitCodeUnknown { // transient: the persister retries
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
					notices.add(corev1.EventTypeNormal, "SecretAdopted", fmt.Sprintf(
						"took over Secret %s, written by the original quarks-job for container %q: now this QuarksJob's output", written.Name, s.Container))
				}
				continue
			case secretwriter.IsNotOwned(err):
				msg := fmt.Sprintf("output file %q of container %q: %v", s.File, s.Container, err)
				result.Problems = append(result.Problems, msg)
				notices.add(corev1.EventTypeWarning, "SecretNotOwned", msg)
			default:
				msg := fmt.Sprintf("output file %q of container %q: %v", s.File, s.Container, err)
				result.Problems = append(result.Problems, msg)
				notices.add(corev1.EventTypeWarning, "SecretWriteFailed", msg)
				retry = "writing Secrets failed"
			}
			failed = true
		}
		result.Persisted = !failed
		if result.Persisted && len(result.Secrets) > 0 {
			notices.add(corev1.EventTypeNormal, "OutputPersisted", fmt.Sprintf("persisted output of pod %s: %s", run.pod.Name, secretNames(result.Secrets)))
		}
	}

	if err := h.recordResult(ctx, run, result); err != nil {
		log.Error(err, "recording the output result on the Job")
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
	var wg sync.WaitGroup
	for i := range secrets {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			r := &results[i]
			r.written, r.adopted, r.err = h.writer.Write(ctx, qjob, secrets[i])
		})
	}
	wg.Wait()
	return results
}

// waitForExitCodes reads the pod from the API server until the kubelet has
// reported the exit code of every declaring container, or the timeout.
func (h *handler) waitForExitCodes(ctx context.Context, run *run, spec *qjv1.Output) (map[string]output.ContainerState, error) {
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

// +kubebuilder:rbac:groups=quarks.cloudfoundry.org,resources=quarksjobs/status,verbs=patch

// recordResult stores the pod's Result in the run's record in the QuarksJob
// status, where only the controller writes. It is a JSON patch whose tests
// make it apply only while the record is still this run's and running, so a
// run that ended or was replaced meanwhile keeps what it had. Uploads of the
// pods of one run append to the list without conflicting; a pod's second
// upload replaces its entry, checked against the resourceVersion.
func (h *handler) recordResult(ctx context.Context, run *run, result upload.Result) error {
	result.Truncate() // the record stays small whatever the output
	for range 8 {
		qjob := &qjv1.QuarksJob{}
		if err := h.reader.Get(ctx, client.ObjectKeyFromObject(run.qjob), qjob); err != nil {
			return err
		}
		last := qjob.Status.LastRun
		if qjob.UID != run.qjob.UID || last == nil || last.JobUID != run.job.UID || last.Result != qjv1.RunRunning {
			return fmt.Errorf("run %d of QuarksJob %s is no longer the running one; its result was not recorded", run.record.Number, run.qjob.Name)
		}
		ops := []jsonPatchOp{
			{Op: "test", Path: "/status/lastRun/jobUID", Value: run.job.UID},
			{Op: "test", Path: "/status/lastRun/result", Value: qjv1.RunRunning},
		}
		if recordedSize(last.Uploads)+recordedSize(result) > maxUploadsBytes {
			result.Compact()
		}
		i := slices.IndexFunc(last.Uploads, func(u qjv1.OutputUpload) bool { return u.Pod == result.Pod })
		switch {
		case i >= 0 && equality.Semantic.DeepEqual(last.Uploads[i], result):
			return nil
		case i >= 0:
			ops = append(ops, jsonPatchOp{Op: "test", Path: "/metadata/resourceVersion", Value: qjob.ResourceVersion},
				jsonPatchOp{Op: "replace", Path: fmt.Sprintf("/status/lastRun/uploads/%d", i), Value: result})
		case last.Uploads == nil:
			ops = append(ops, jsonPatchOp{Op: "test", Path: "/metadata/resourceVersion", Value: qjob.ResourceVersion},
				jsonPatchOp{Op: "add", Path: "/status/lastRun/uploads", Value: []upload.Result{result}})
		default:
			ops = append(ops, jsonPatchOp{Op: "add", Path: "/status/lastRun/uploads/-", Value: result})
		}
		patch, err := json.Marshal(ops)
		if err != nil {
			return err
		}
		err = h.client.Status().Patch(ctx, qjob, client.RawPatch(types.JSONPatchType, patch))
		if apierrors.IsConflict(err) || apierrors.IsInvalid(err) || isFailedTest(err) {
			continue // the record changed under us: read it again
		}
		return err
	}
	return fmt.Errorf("the status of QuarksJob %s kept changing", run.qjob.Name)
}

// maxUploadsBytes bounds the uploads in a run's record (the whole QuarksJob
// must stay well below the API server's 1.5 MB): beyond it, each further
// upload is recorded compacted (see OutputUpload.Compact).
const maxUploadsBytes = 256 << 10

func recordedSize(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// isFailedTest reports whether a JSON patch was refused because one of its
// test operations (or a path it assumed) no longer held: the API server
// answers 422 or 400.
func isFailedTest(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	code := status.Status().Code
	return code == http.StatusUnprocessableEntity || code == http.StatusBadRequest
}

// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// notices are the Events of one upload, grouped by type and reason: the
// events API merges Events of the same reason regarding the same object into
// one series that shows only the first note, so one Event carries every
// message of its reason.
type notices struct {
	order    []noticeKey
	messages map[noticeKey][]string
}

type noticeKey struct{ eventType, reason string }

func (n *notices) add(eventType, reason, message string) {
	key := noticeKey{eventType, reason}
	if n.messages == nil {
		n.messages = map[noticeKey][]string{}
	}
	if _, seen := n.messages[key]; !seen {
		n.order = append(n.order, key)
	}
	n.messages[key] = append(n.messages[key], message)
}

// maxNote is what an Event's note may hold (1 kB), less room for the ellipsis.
const maxNote = 1000

// emit records the notices as Events on the QuarksJob, related to the Job.
func (h *handler) emit(run *run, n notices) {
	if h.recorder == nil {
		return
	}
	for _, key := range n.order {
		h.recorder.Eventf(run.qjob, run.job, key.eventType, key.reason, "PersistOutput", "%s", joinNote(n.messages[key]))
	}
}

// joinNote joins messages within maxNote, saying how many did not fit (the
// Job's result annotation and the QuarksJob's status hold them all).
func joinNote(messages []string) string { return text.List(messages, "; ", 0, maxNote) }

func eventType(p output.Problem) string {
	if p.Blocking {
		return corev1.EventTypeWarning
	}
	if p.Reason == output.ReasonUndeclaredOutput {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

// unsupportedProtocol refuses an upload in a protocol version this controller
// does not serve, and says so on the run, since the persister's log is not
// where a user looks: the pod's record names the persister's version and
// what to do, and the run that needs this pod's output fails with it unless
// an upload in a served version replaces the record. The answer is 503: in
// a rolling upgrade another replica may serve the version, so the persister
// tries again until its upload timeout. A pod whose output is persisted
// keeps its record.
func (h *handler) unsupportedProtocol(w http.ResponseWriter, r *http.Request, log logr.Logger, run *run, speaks string) {
	persister := "of unknown version"
	if v, ok := strings.CutPrefix(r.UserAgent(), upload.UserAgentPrefix); ok && plainVersion(v) {
		persister = v
	}
	msg := fmt.Sprintf("output of pod %s not persisted: its persister (%s) speaks upload protocol %q, and this controller (%s) serves %q; "+
		"run the persister image of the controller's release or of the release before it (docs/upgrading.md, version skew)",
		run.pod.Name, persister, clip(speaks), version.Get().Version, upload.Version)
	ref := podRef{Namespace: run.pod.Namespace, Name: run.pod.Name}
	result := upload.Result{Pod: run.pod.Name, Index: completionIndex(run.pod), Problems: []string{msg}}
	i := slices.IndexFunc(run.record.Uploads, func(u qjv1.OutputUpload) bool { return u.Pod == run.pod.Name })
	switch {
	case i >= 0 && run.record.Uploads[i].Persisted:
		h.refused(w, r, ref, refuse(http.StatusBadRequest, "%s; the output of an earlier upload stays persisted", msg))
		return
	case i >= 0 && equality.Semantic.DeepEqual(run.record.Uploads[i], result):
		// Recorded and reported at the first attempt.
	default:
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), processingTimeout)
		defer cancel()
		if err := h.recordResult(ctx, run, result); err != nil {
			log.Error(err, "recording a refused upload on the run")
		}
		var n notices
		n.add(corev1.EventTypeWarning, "UploadProtocolUnsupported", msg)
		h.emit(run, n)
	}
	h.refused(w, r, ref, refuse(http.StatusServiceUnavailable, "%s", msg))
}

// plainVersion: what a persister says its version is goes into the run's
// record only when it looks like one (v1.2.3-rc.1+abc), at most 64 bytes.
func plainVersion(v string) bool {
	const allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-+"
	return v != "" && len(v) <= 64 && strings.Trim(v, allowed) == ""
}

// clip bounds what a client says before it goes, quoted, into a record: at
// most 64 bytes, cut at a character boundary.
func clip(s string) string { return text.Truncate(s, 64) }

// refused answers a request that was not accepted.
func (h *handler) refused(w http.ResponseWriter, r *http.Request, ref podRef, err error) {
	status := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		status = he.status
	}
	uploadsTotal.WithLabelValues(fmt.Sprint(status)).Inc()
	// Refusals of requests no pod is known for are logged at a bounded rate:
	// a flood of them must not flood the log.
	if ref.Namespace != "" || h.limits.anonymousLog.Allow() {
		h.log.Info("upload refused", "status", status, "reason", err.Error(), "remote", r.RemoteAddr, "pod", ref.Namespace+"/"+ref.Name)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "2")
	}
	httpFail(w, status, err.Error())
}

func httpFail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, upload.Response{Problems: []string{msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// secretNames lists the first few Secrets' names and counts the rest, short
// enough for an Event's note with the text around it.
func secretNames(secrets []qjv1.OutputSecret) string {
	names := make([]string, len(secrets))
	for i, s := range secrets {
		names[i] = s.Name
	}
	return text.List(names, ", ", 10, maxNote/2)
}
