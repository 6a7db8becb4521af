package outputendpoint

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
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
	if !ok || strings.TrimSpace(token) == "" {
		return podRef{}, refuse(http.StatusUnauthorized, "a bearer token (the pod's projected service-account token, audience %s) is required", upload.Audience)
	}
	review := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: strings.TrimSpace(token), Audiences: []string{upload.Audience}}}
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

// serviceAccountNamespace reads the namespace from "system:serviceaccount:<ns>:<name>".
func serviceAccountNamespace(username string) (string, bool) {
	parts := strings.Split(username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" {
		return "", false
	}
	return parts[2], true
}

// run is the pod an upload came from, its Job and its QuarksJob.
type run struct {
	pod  *corev1.Pod
	job  *batchv1.Job
	qjob *qjv1.QuarksJob
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get
// +kubebuilder:rbac:groups=quarks.cloudfoundry.org,resources=quarksjobs,verbs=get

// resolve follows the controller references from the pod to its Job and from
// the Job to its QuarksJob, checking every UID, so a pod that is not a run of
// a QuarksJob is refused.
func (h *handler) resolve(ctx context.Context, ref podRef) (*run, error) {
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
	return &run{pod: pod, job: job, qjob: qjob}, nil
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
