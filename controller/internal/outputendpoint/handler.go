package outputendpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
		h.noteRefusal(r.Context(), log, run, err)
		h.refused(w, r, ref, err)
		return
	}
	defer release()

	req, err := upload.DecodeRequest(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = refuse(http.StatusRequestEntityTooLarge, "upload is larger than %d bytes", maxBodyBytes)
		} else {
			err = refuse(http.StatusBadRequest, "%v", err)
		}
		h.noteRefusal(r.Context(), log, run, err)
		h.refused(w, r, ref, err)
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
		w.Header().Set("Retry-After", retryAfterSeconds)
		status = http.StatusServiceUnavailable
		resp.Problems = append(resp.Problems, outcome.retry)
	}
	log.Info("upload handled", "status", status, "persisted", outcome.result.Persisted,
		"secrets", resp.Secrets, "problems", len(outcome.result.Problems), "duration", time.Since(received).String())
	writeJSON(w, status, resp)
}

// retryAfterSeconds is what a busy or throttled answer asks the persister
// to wait before it tries again.
const retryAfterSeconds = "2"

// outcome is what persist did.
type outcome struct {
	result upload.Result
	// retry, when set, says why the upload must be sent again.
	retry string
}

// +kubebuilder:rbac:groups=quarks.cloudfoundry.org,resources=quarksjobs/status,verbs=patch

// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// unsupportedProtocol refuses an upload in a protocol version this controller
// does not serve, and says so on the run, since the persister's log is not
// where a user looks: the pod's record names the persister's version and
// what to do, and the run that needs this pod's output fails with it unless
// an upload in a served version replaces the record. The answer is 503: in
// a rolling upgrade another replica may serve the version, so the persister
// tries again until its upload timeout. A pod whose output is persisted
// keeps its record.
func (h *handler) unsupportedProtocol(w http.ResponseWriter, r *http.Request, log logr.Logger, run *origin, speaks string) {
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
		w.Header().Set("Retry-After", retryAfterSeconds)
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
