// Package endpoints puts the admission handlers on the webhook server's
// paths and describes the webhook configurations that route to them.
package endpoints

import (
	"net/http"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/webhook/internal/inject"
	"code.cloudfoundry.org/quarks-job/webhook/internal/qjobadmission"
)

// Paths of the admission handlers on the webhook server.
const (
	PodPath               = "/mutate-v1-pod"
	QuarksJobDefaultPath  = "/mutate-quarks-cloudfoundry-org-v1alpha1-quarksjob"
	QuarksJobValidatePath = "/validate-quarks-cloudfoundry-org-v1alpha1-quarksjob"
)

// Names of the webhooks inside the configurations.
const (
	PodWebhookName               = "persister.pods.quarks.cloudfoundry.org"
	QuarksJobDefaultWebhookName  = "default.quarksjobs.quarks.cloudfoundry.org"
	QuarksJobValidateWebhookName = "validate.quarksjobs.quarks.cloudfoundry.org"
)

// Register puts the handlers on the server. wrap, when not nil, wraps each
// handler (the benchmark and the tests count calls with it).
func Register(server webhook.Server, scheme *runtime.Scheme, cfg inject.Config, caBundle inject.CABundle, wrap func(http.Handler) http.Handler) {
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	pods := &webhook.Admission{Handler: &inject.Handler{Config: cfg, CABundle: caBundle, Decoder: admission.NewDecoder(scheme)}}
	server.Register(PodPath, wrap(pods))
	server.Register(QuarksJobDefaultPath, wrap(qjobadmission.DefaultingWebhook(scheme)))
	server.Register(QuarksJobValidatePath, wrap(admission.WithValidator[*qjv1.QuarksJob](scheme, qjobadmission.Validator{})))
}

// Service is where the API server reaches the webhook.
type Service struct {
	Namespace string
	Name      string
	Port      int32
}

func (s Service) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
		Namespace: s.Namespace, Name: s.Name, Port: ptr.To(s.Port), Path: ptr.To(path),
	}}
}

// DefaultPodTimeoutSeconds is how long the API server waits for the pod
// webhook unless the chart's webhook.timeoutSeconds says otherwise.
const DefaultPodTimeoutSeconds = 10

// MutatingWebhookConfiguration is the configuration the chart installs: `make
// generate` writes it to the chart's files/webhook/configurations.yaml, and
// the chart sets only what depends on the release (name, labels, Service,
// namespaceSelector, podTimeoutSeconds). No CA bundle: the webhook patches it
// in, or cert-manager's CA injector does.
//
// The pod webhook injects the persister into the pods of QuarksJobs, and
// only those (objectSelector: the QuarksJob label): every other pod is never
// sent to it. It fails closed: without the webhook a QuarksJob pod is not
// created (the Job controller retries), so it never runs without its
// persister. The API server waits podTimeoutSeconds for it.
//
// The QuarksJob webhooks (defaulting here, validation in
// ValidatingWebhookConfiguration) fail open: they give early, clear
// messages, but an unavailable webhook must not stop users from creating
// QuarksJobs nor the controller from updating them. What matters for safety
// (reserved volumes, /mnt/quarks, file names) the pod webhook checks again,
// and the controller reports whatever else is wrong in the QuarksJob's
// status.
func MutatingWebhookConfiguration(name string, svc Service, podTimeoutSeconds int32) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{
				Name:         PodWebhookName,
				ClientConfig: svc.clientConfig(PodPath),
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{
						APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
						Scope: ptr.To(admissionregistrationv1.NamespacedScope),
					},
				}},
				ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: qjv1.LabelQJobName, Operator: metav1.LabelSelectorOpExists,
				}}},
				FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
				MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To(podTimeoutSeconds),
				AdmissionReviewVersions: []string{"v1"},
				// Injection is a fixpoint; a later webhook's change needs no
				// second pass.
				ReinvocationPolicy: ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
			},
			{
				Name:                    QuarksJobDefaultWebhookName,
				ClientConfig:            svc.clientConfig(QuarksJobDefaultPath),
				Rules:                   quarksJobRules(),
				FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
				MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To[int32](5),
				AdmissionReviewVersions: []string{"v1"},
				ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
			},
		},
	}
}

// ValidatingWebhookConfiguration is the configuration the chart installs (see
// MutatingWebhookConfiguration). Its webhook checks what the CRD schema
// cannot express (cross-field rules, reserved names) and fails open, as the
// defaulting one does.
func ValidatingWebhookConfiguration(name string, svc Service) *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    QuarksJobValidateWebhookName,
			ClientConfig:            svc.clientConfig(QuarksJobValidatePath),
			Rules:                   quarksJobRules(),
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](5),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

func quarksJobRules() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{qjv1.GroupName}, APIVersions: []string{qjv1.GroupVersion.Version}, Resources: []string{"quarksjobs"},
			Scope: ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}}
}

// Scheme returns a scheme with the types the handlers decode.
func Scheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := admissionregistrationv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := qjv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return scheme
}
