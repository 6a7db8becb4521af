package endpoints_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/validation/validationtest"
	"code.cloudfoundry.org/quarks-job/webhook/internal/endpoints"
)

func TestQuarksJobRules(t *testing.T) {
	ns := namespace(t, nil)
	good := validationtest.GoodQuarksJob()
	good.Namespace = ns
	before := callCount(endpoints.QuarksJobValidatePath)
	create(t, good)
	if callCount(endpoints.QuarksJobValidatePath) == before {
		t.Error("the QuarksJob was not sent to the validating webhook")
	}

	for _, tc := range validationtest.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			qj := validationtest.GoodQuarksJob()
			qj.Namespace = ns
			qj.Name = ""
			qj.GenerateName = "bad-"
			tc.Break(qj)
			err := k8s.Create(context.Background(), qj)
			if err == nil {
				t.Fatal("accepted")
			}
			// The API server's own schema checks some rules before the
			// webhook is called; either way the message names the field.
			t.Logf("rejected: %v", err)
			if schema, ok := validationtest.SchemaErr[tc.Name]; ok {
				for _, want := range schema {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain the schema's %q", err, want)
					}
				}
				return
			}
			field := strings.TrimPrefix(tc.WantErr[0], "spec.")
			if !strings.Contains(err.Error(), field) {
				t.Errorf("error %q does not name %s", err, tc.WantErr[0])
			}
		})
	}
}

func TestQuarksJobDefaults(t *testing.T) {
	ns := namespace(t, nil)
	qj := validationtest.GoodQuarksJob()
	qj.Namespace = ns
	qj.Spec.Template.Spec.Template.Spec.RestartPolicy = ""
	qj.Spec.Output.OutputType = ""
	create(t, qj)

	stored := &qjv1.QuarksJob{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(qj), stored); err != nil {
		t.Fatal(err)
	}
	if got := stored.Spec.Template.Spec.Template.Spec.RestartPolicy; got != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q, want Never", got)
	}
	if got := stored.Spec.Output.OutputMap["gen"]["other.json"].PersistenceMethod; got != qjv1.PersistOneToOne {
		t.Errorf("persistencemethod = %q, want one-to-one", got)
	}
	if got := stored.Spec.Output.OutputType; got != qjv1.OutputTypeJSON {
		t.Errorf("outputType = %q, want json", got)
	}
}
