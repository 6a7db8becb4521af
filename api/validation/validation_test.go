package validation

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/validation/validationtest"
)

func TestQuarksJob(t *testing.T) {
	if errs := QuarksJob(validationtest.GoodQuarksJob()); len(errs) > 0 {
		t.Fatalf("the good QuarksJob is rejected: %v", errs.ToAggregate())
	}
	for _, tc := range validationtest.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			qj := validationtest.GoodQuarksJob()
			tc.Break(qj)
			errs := QuarksJob(qj)
			if len(errs) == 0 {
				t.Fatal("accepted")
			}
			msg := errs.ToAggregate().Error()
			for _, want := range tc.WantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	qj := validationtest.GoodQuarksJob()
	qj.Spec.Template.Spec.Template.Spec.RestartPolicy = ""
	qj.Spec.Output.OutputType = ""
	Default(qj)
	if got := qj.Spec.Template.Spec.Template.Spec.RestartPolicy; got != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q, want Never", got)
	}
	if got := qj.Spec.Output.OutputType; got != qjv1.OutputTypeJSON {
		t.Errorf("outputType = %q, want json", got)
	}
	if got := qj.Spec.Output.OutputMap["gen"]["creds.json"].PersistenceMethod; got != qjv1.PersistOneToOne {
		t.Errorf("persistencemethod = %q, want one-to-one", got)
	}
	if errs := QuarksJob(qj); len(errs) > 0 {
		t.Errorf("a defaulted QuarksJob is rejected: %v", errs.ToAggregate())
	}

	kept := validationtest.GoodQuarksJob()
	kept.Spec.Template.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	Default(kept)
	if got := kept.Spec.Template.Spec.Template.Spec.RestartPolicy; got != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy OnFailure was changed to %q", got)
	}
}
