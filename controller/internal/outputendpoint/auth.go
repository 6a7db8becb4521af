package outputendpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/runpod"
)

// The claims a pod-bound service-account token carries, as TokenReview
// returns them in status.user.extra.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// httpError is a refusal with its status code.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// podRef is the pod a token is bound to.
type podRef struct {
	Namespace, Name string
	UID             types.UID
}

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// authenticate reviews the bearer token and returns the pod it is bound to.
// The pod comes from the token's bound-object claims only.
func (h *handler) authenticate(ctx context.Context, r *http.Request) (podRef, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return podRef{}, refuse(http.StatusUnauthorized, "a bearer token (the pod's projected service-account token, audience %s) is required", upload.Audience)
	}
	if !plausibleToken(token) {
		return podRef{}, refuse(http.StatusUnauthorized, "the bearer token is not a service-account token")
	}
	// A token seen recently is not reviewed again. Unknown tokens are
	// checked against the issuer's keys first (a made-up token costs no
	// review), then reviewed at a bounded rate charged to the namespace the
	// verified token names, or to the request's source address when the
	// keys cannot be read: one party's flood spends only its own budget.
	now := time.Now()
	if seen, ok := h.limits.cached(token, now); ok {
		tokenChecks.WithLabelValues("cached").Inc()
		return seen.ref, seen.err
	}
	// An address whose requests keep being refused is answered 429 before
	// its tokens cost a signature check.
	address := sourceAddress(r)
	if err := h.limits.refusedRecently(address); err != nil {
		tokenChecks.WithLabelValues("throttled").Inc()
		h.limits.tarpit(ctx, address)
		return podRef{}, err
	}
	ref, err := h.verify(ctx, token, address, now)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusUnauthorized {
			h.limits.chargeRefusal(address)
		}
	}
	return ref, err
}

// verify checks token against the issuer's keys, then reviews it, charging
// the review to the namespace the verified token names, or to the source
// address when the keys cannot be read.
func (h *handler) verify(ctx context.Context, token, address string, now time.Time) (podRef, error) {
	verified, err := h.issuer.namespace(ctx, token, now)
	who, outcome := "namespace "+verified, "reviewed-namespace"
	switch {
	case errors.Is(err, errNoKeys):
		who, outcome = "address "+address, "reviewed-address"
		h.log.V(1).Info("charging a token review to its source address", "address", who, "reason", err.Error())
	case err != nil:
		tokenChecks.WithLabelValues("not-issued").Inc()
		return podRef{}, err
	}
	if err := h.limits.awaitReview(ctx, who); err != nil {
		tokenChecks.WithLabelValues("throttled").Inc()
		return podRef{}, err
	}
	tokenChecks.WithLabelValues(outcome).Inc()
	ref, err := h.review(ctx, token)
	if err == nil && verified != "" && ref.Namespace != verified {
		err = refuse(http.StatusUnauthorized, "token not accepted: it names namespace %s, its review %s", verified, ref.Namespace)
	}
	var he *httpError
	if err == nil || (errors.As(err, &he) && he.status != http.StatusServiceUnavailable) {
		h.limits.remember(token, ref, err, now)
	}
	return ref, err
}

// review asks the API server who token is.
func (h *handler) review(ctx context.Context, token string) (podRef, error) {
	review := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{upload.Audience}}}
	if err := h.client.Create(ctx, review); err != nil {
		return podRef{}, refuse(http.StatusServiceUnavailable, "reviewing the token: %v", err)
	}
	st := review.Status
	if !st.Authenticated {
		return podRef{}, refuse(http.StatusUnauthorized, "token not accepted: %s", orDefault(st.Error, "not authenticated"))
	}
	if !slices.Contains(st.Audiences, upload.Audience) {
		return podRef{}, refuse(http.StatusUnauthorized, "token is not for audience %q (it is for %q)", upload.Audience, st.Audiences)
	}
	namespace, ok := serviceAccountNamespace(st.User.Username)
	if !ok {
		return podRef{}, refuse(http.StatusForbidden, "token of %q is not a service-account token", st.User.Username)
	}
	names, uids := st.User.Extra[extraPodName], st.User.Extra[extraPodUID]
	if len(names) != 1 || len(uids) != 1 || names[0] == "" || uids[0] == "" {
		return podRef{}, refuse(http.StatusForbidden, "token of %q is not bound to a pod", st.User.Username)
	}
	return podRef{Namespace: namespace, Name: names[0], UID: types.UID(uids[0])}, nil
}

// sourceAddress is the request's peer address without its port: a pod's IP,
// which the request cannot choose.
func sourceAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serviceAccountNamespace reads the namespace from "system:serviceaccount:<ns>:<name>".
func serviceAccountNamespace(username string) (string, bool) {
	parts := strings.Split(username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" {
		return "", false
	}
	return parts[2], true
}

// run is the pod an upload came from, its Job, its QuarksJob, and the run
// record that makes the Job a run: the QuarksJob status's lastRun.
type run struct {
	pod    *corev1.Pod
	job    *batchv1.Job
	qjob   *qjv1.QuarksJob
	record *qjv1.Run
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get
// +kubebuilder:rbac:groups=quarks.cloudfoundry.org,resources=quarksjobs,verbs=get

// resolve finds the run an authenticated pod belongs to. The pod's and the
// Job's controller references only say where to look: whoever creates a Job
// or a pod writes them. What makes the pod a run's is the QuarksJob's status,
// which only the controller writes: its current run's record must hold the
// UID of the Job that controls the pod, and the pod must be what the Job
// controller and the webhook make of that Job's template (runpod.Check).
func (h *handler) resolve(ctx context.Context, ref podRef) (*run, error) {
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
	return &run{pod: pod, job: job, qjob: qjob, record: record}, nil
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
