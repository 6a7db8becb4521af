// Package qjobadmission is the QuarksJob admission webhook: it applies the rules
// of package validation (shared with the controller) at admission.
package qjobadmission

import (
	"context"
	"encoding/json"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/validation"
)

// Validator is the validating admission handler for QuarksJobs.
type Validator struct{}

var _ admission.Validator[*qjv1.QuarksJob] = Validator{}

// ValidateCreate rejects a QuarksJob with any problem, each naming its field.
func (Validator) ValidateCreate(_ context.Context, qj *qjv1.QuarksJob) (admission.Warnings, error) {
	return validation.Warnings(qj), invalid(qj)
}

// ValidateUpdate validates the new spec. An update that leaves the spec as it
// was (the controller's annotations, labels, finalizers) is always allowed,
// so a QuarksJob stored before a rule existed can still be run and deleted.
func (Validator) ValidateUpdate(_ context.Context, old, qj *qjv1.QuarksJob) (admission.Warnings, error) {
	if equality.Semantic.DeepEqual(old.Spec, qj.Spec) {
		return nil, nil
	}
	return validation.Warnings(qj), invalid(qj)
}

// ValidateDelete allows every deletion.
func (Validator) ValidateDelete(context.Context, *qjv1.QuarksJob) (admission.Warnings, error) {
	return nil, nil
}

func invalid(qj *qjv1.QuarksJob) error {
	errs := validation.QuarksJob(qj)
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(qjv1.GroupVersion.WithKind("QuarksJob").GroupKind(), qj.Name, errs)
}

// DefaultingWebhook is the defaulting webhook: Defaulter behind
// controller-runtime's handler, except that a QuarksJob that does not
// decode into the Go types (a string for a boolean, a number beyond int32)
// is admitted as it is. The API server validates it against the CRD's
// schema after the mutating webhooks, and refuses it with a message that
// names the field; refusing it here would show the decoder's message
// instead.
func DefaultingWebhook(scheme *runtime.Scheme) *admission.Webhook {
	return &admission.Webhook{Handler: undecodableAsIs{admission.WithDefaulter[*qjv1.QuarksJob](scheme, Defaulter{})}}
}

type undecodableAsIs struct{ defaulting admission.Handler }

func (h undecodableAsIs) Handle(ctx context.Context, req admission.Request) admission.Response {
	if err := json.Unmarshal(req.Object.Raw, &qjv1.QuarksJob{}); err != nil {
		return admission.Allowed("not defaulted, left to the schema: " + err.Error())
	}
	return h.defaulting.Handle(ctx, req)
}

// Defaulter is the defaulting admission handler for QuarksJobs.
type Defaulter struct{}

var _ admission.Defaulter[*qjv1.QuarksJob] = Defaulter{}

// Default sets the defaults of validation.Default.
func (Defaulter) Default(_ context.Context, qj *qjv1.QuarksJob) error {
	validation.Default(qj)
	return nil
}
