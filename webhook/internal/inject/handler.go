package inject

import (
	"context"
	"encoding/json"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// CABundle returns the PEM bundle of the CA that signs the controller's
// output endpoint; empty while it is not known yet.
type CABundle func() []byte

// Handler is the mutating admission handler for QuarksJob pods.
type Handler struct {
	Config   Config
	CABundle CABundle
	Decoder  admission.Decoder
}

var _ admission.Handler = &Handler{}

// Handle injects the persister into a pod that declares output. A pod
// without the QuarksJob label or without declared output is admitted
// unchanged: it has nothing to upload.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("only pod creation is mutated")
	}
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if _, ok := pod.Labels[qjv1.LabelQJobName]; !ok {
		return admission.Allowed("not a QuarksJob pod")
	}
	files, ok, err := OutputFiles(pod)
	if err != nil {
		return admission.Denied(err.Error())
	}
	if !ok {
		return admission.Allowed("no output declared; no persister needed")
	}
	caBundle := h.CABundle()
	if len(caBundle) == 0 {
		// The pod waits (the Job controller retries) rather than start
		// with a persister that cannot trust the endpoint.
		return admission.Errored(http.StatusServiceUnavailable, errNoCABundle)
	}

	injected := pod.DeepCopy()
	if err := Inject(injected, files, pod.Annotations[qjv1.AnnotationOutputFiles], caBundle, h.Config); err != nil {
		return admission.Denied(err.Error())
	}
	if equality.Semantic.DeepEqual(pod, injected) {
		return admission.Allowed("persister already injected")
	}
	marshaled, err := json.Marshal(injected)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	log.FromContext(ctx).V(1).Info("injecting persister", "namespace", req.Namespace, "job", pod.Labels[qjv1.LabelQJobName], "containers", len(files))
	return admission.PatchResponseFromRaw(req.Object.Raw, marshaled)
}

type errorString string

func (e errorString) Error() string { return string(e) }

const errNoCABundle = errorString("the CA bundle of the output endpoint is not known yet; retry later")
