package qjobadmission

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/validation/validationtest"
)

func TestUpdateOfUnchangedSpecIsAllowed(t *testing.T) {
	old := validationtest.GoodQuarksJob()
	old.Spec.Template.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	updated := old.DeepCopy()
	updated.Annotations = map[string]string{qjv1.AnnotationRequestedRun: "2"}
	if _, err := (Validator{}).ValidateUpdate(t.Context(), old, updated); err != nil {
		t.Errorf("an annotation change of a QuarksJob stored before the rules was rejected: %v", err)
	}
	updated.Spec.UpdateOnConfigChange = true
	if _, err := (Validator{}).ValidateUpdate(t.Context(), old, updated); err == nil || !strings.Contains(err.Error(), "restartPolicy") {
		t.Errorf("a spec change kept an invalid restartPolicy: err = %v", err)
	}
}

func TestReservedTemplateKeysWarn(t *testing.T) {
	qj := validationtest.GoodQuarksJob()
	if w, err := (Validator{}).ValidateCreate(t.Context(), qj); err != nil || len(w) > 0 {
		t.Fatalf("the good QuarksJob: warnings %v, err %v", w, err)
	}
	qj.Spec.Template.Spec.Template.Annotations = map[string]string{qjv1.AnnotationOutputResult: `{"persisted":true}`}
	w, err := (Validator{}).ValidateCreate(t.Context(), qj)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "spec.template.spec.template.metadata.annotations "+qjv1.AnnotationOutputResult+" is reserved") {
		t.Fatalf("warnings %q, err %v; want one naming the reserved annotation", w, err)
	}
}

func TestOriginalPlacementOfJobSpecFields(t *testing.T) {
	qj := validationtest.GoodQuarksJob()
	qj.Spec.Template.BackoffLimit = ptr.To[int32](2)
	w, err := (Validator{}).ValidateCreate(t.Context(), qj)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "spec.template.backoffLimit is where the original QuarksJob took it; it is used as spec.template.spec.backoffLimit") {
		t.Fatalf("warnings %q, err %v; want one naming the field and its place", w, err)
	}
	qj.Spec.Template.Spec.BackoffLimit = ptr.To[int32](5)
	if _, err := (Validator{}).ValidateCreate(t.Context(), qj); err == nil || !strings.Contains(err.Error(), "spec.template.backoffLimit: Invalid value: \"\": differs from spec.template.spec.backoffLimit") {
		t.Fatalf("a conflicting placement: err = %v", err)
	}
	qj.Spec.Template.Spec.BackoffLimit = ptr.To[int32](2)
	if _, err := (Validator{}).ValidateCreate(t.Context(), qj); err != nil {
		t.Fatalf("the same value in both places is refused: %v", err)
	}
}

func TestDefaultingLeavesUndecodableToTheSchema(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := qjv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	hook := DefaultingWebhook(scheme)
	request := func(raw string) admission.Request {
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(raw)},
			Kind: metav1.GroupVersionKind{Group: qjv1.GroupName, Version: "v1alpha1", Kind: "QuarksJob"},
		}}
	}
	undecodable := hook.Handle(t.Context(), request(`{"apiVersion":"quarks.cloudfoundry.org/v1alpha1","kind":"QuarksJob","spec":{"updateOnConfigChange":"yes"}}`))
	if !undecodable.Allowed || len(undecodable.Patches) > 0 {
		t.Errorf("a QuarksJob the Go types cannot hold: allowed %t, patches %v; want it admitted unchanged", undecodable.Allowed, undecodable.Patches)
	}
	good := hook.Handle(t.Context(), request(`{"apiVersion":"quarks.cloudfoundry.org/v1alpha1","kind":"QuarksJob","spec":{"trigger":{"strategy":"once"},"template":{"spec":{"template":{"spec":{"containers":[]}}}}}}`))
	defaulted := false
	for _, p := range good.Patches {
		defaulted = defaulted || strings.HasSuffix(p.Path, "/restartPolicy")
	}
	if !good.Allowed || !defaulted {
		t.Errorf("a good QuarksJob: allowed %t, patches %v; want restartPolicy defaulted", good.Allowed, good.Patches)
	}
}
