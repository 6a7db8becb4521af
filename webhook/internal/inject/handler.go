package inject

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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

var admitted = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "quarks_job_webhook_pods_total",
	Help: "QuarksJob pods seen by the pod webhook, by outcome: injected, no_output, already_injected, denied, error.",
}, []string{"outcome"})

func init() { metrics.Registry.MustRegister(admitted) }

// Handle injects the persister into a pod that declares output. A pod
// without the QuarksJob label or without declared output is admitted
// unchanged: it has nothing to upload.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	resp, outcome := h.handle(ctx, req)
	admitted.WithLabelValues(outcome).Inc()
	return resp
}

func (h *Handler) handle(ctx context.Context, req admission.Request) (admission.Response, string) {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("only pod creation is mutated"), "no_output"
	}
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err), "error"
	}
	if _, ok := pod.Labels[qjv1.LabelQJobName]; !ok {
		return admission.Allowed("not a QuarksJob pod"), "no_output"
	}
	files, ok, err := OutputFiles(pod)
	if err != nil {
		return admission.Denied(err.Error()), "denied"
	}
	if !ok {
		return admission.Allowed("no output declared; no persister needed"), "no_output"
	}
	caBundle := h.CABundle()
	if len(caBundle) == 0 {
		// The pod waits (the Job controller retries) rather than start
		// with a persister that cannot trust the endpoint.
		return admission.Errored(http.StatusServiceUnavailable, errNoCABundle), "error"
	}

	injected := pod.DeepCopy()
	if err := Inject(injected, files, pod.Annotations[qjv1.AnnotationOutputFiles], caBundle, h.Config); err != nil {
		return admission.Denied(err.Error()), "denied"
	}
	if equality.Semantic.DeepEqual(pod, injected) {
		return admission.Allowed("persister already injected"), "already_injected"
	}
	marshaled, err := json.Marshal(injected)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err), "error"
	}
	log.FromContext(ctx).V(1).Info("injecting persister", "namespace", req.Namespace, "job", pod.Labels[qjv1.LabelQJobName], "containers", len(files))
	return admission.PatchResponseFromRaw(req.Object.Raw, marshaled), "injected"
}

type errorString string

func (e errorString) Error() string { return string(e) }

const errNoCABundle = errorString("the CA bundle of the output endpoint is not known yet; retry later")
