package quarksjob

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// originalManifest is shaped like the original QuarksJob's examples: Job
// spec fields directly under spec.template.
const originalManifest = `
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: original
spec:
  trigger:
    strategy: once
  template:
    backoffLimit: 2
    activeDeadlineSeconds: 600
    spec:
      template:
        metadata:
          name: original
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
            command: ["true"]
`

// TestOriginalManifestIsAccepted: the API server accepts the original's
// placement under strict field validation (kubectl apply's default), and the
// run's Job gets the fields where they belong.
func TestOriginalManifestIsAccepted(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(originalManifest), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(ns)
	if err := k8s.Create(ctx, u, client.FieldValidation("Strict")); err != nil {
		t.Fatalf("the original's manifest is refused: %v", err)
	}
	waitJobs(t, ns, "original-1")
	job := &batchv1.Job{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "original-1"}, job); err != nil {
		t.Fatal(err)
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 2 || job.Spec.ActiveDeadlineSeconds == nil || *job.Spec.ActiveDeadlineSeconds != 600 {
		t.Errorf("the run's Job has backoffLimit %v, activeDeadlineSeconds %v; want 2 and 600 from spec.template", job.Spec.BackoffLimit, job.Spec.ActiveDeadlineSeconds)
	}
	waitStatus(t, ns, "original", strategyIs(qjv1.StrategyDone))
}
