//go:build e2e

package product_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// originalCRD is the QuarksJob CRD as the original operator applied it at start-up: no
// Helm metadata, a schema that keeps every field, the status subresource.
const originalCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: quarksjobs.quarks.cloudfoundry.org
spec:
  group: quarks.cloudfoundry.org
  scope: Namespaced
  names:
    kind: QuarksJob
    listKind: QuarksJobList
    plural: quarksjobs
    singular: quarksjob
    shortNames: [qjob, qjobs]
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

// originalQJob is shaped like the original quarks-job's examples: backoffLimit directly under
// spec.template, a one-off already done, outputs a plain and a versioned Secret, a REMOTE_ID.
const originalQJob = `
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: moved
spec:
  trigger:
    strategy: done
  updateOnConfigChange: true
  output:
    outputMap:
      gen:
        creds.json:
          name: moved-creds
        cert.json:
          name: moved-cert
          versioned: true
  template:
    backoffLimit: 1
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: gen
            image: busybox
            env:
            - name: REMOTE_ID
              value: db-1
            envFrom:
            - configMapRef:
                name: moved-config
            command: ["sh", "-c", "echo \"{\\\"password\\\":\\\"$VALUE\\\"}\" > /mnt/quarks/creds.json; echo \"{\\\"crt\\\":\\\"$VALUE\\\"}\" > /mnt/quarks/cert.json"]
`

// testSwitchFromOriginal switches operators in place. After helm uninstall it puts the cluster
// in the state the original operator leaves: its CRD (applied by the original at start-up, not
// Helm's), a done one-off QuarksJob in the original's shape, the Secrets the original wrote
// (a plain one without owner, versions v1..v3 owned by the QuarksJob). Then it installs the
// chart as docs/migration.md says and checks that nothing re-runs until the configuration
// changes, that the first run takes the plain Secret over and continues the versions, and that
// deleting the QuarksJob keeps the plain Secret and removes the versions.
func testSwitchFromOriginal(t *testing.T) {
	e := newEnv(t, "moved", nil)
	ctx := e.ctx
	if _, err := suite.kube.AppsV1().Deployments(releaseNS).Get(ctx, controllerDeployment, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the operator must be uninstalled before the switch (runs after helm-uninstall): %v", err)
	}
	crds := suite.apiext.ApiextensionsV1().CustomResourceDefinitions()
	crd, err := crds.Get(ctx, crdName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	original := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal([]byte(originalCRD), original); err != nil {
		t.Fatal(err)
	}
	crd.Labels, crd.Annotations, crd.Spec = nil, nil, original.Spec
	if _, err := crds.Update(ctx, crd, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("replacing the CRD with the original's: %v", err)
	}

	e.apply("configmap", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moved-config\ndata:\n  VALUE: one\n"))
	qjobs := suite.dynamic.Resource(qjobGVR).Namespace(e.namespace)
	applied := e.apply("the original's QuarksJob", []byte(originalQJob))[0]
	applied.Object["status"] = map[string]any{"lastReconcile": "2024-01-01T00:00:00Z"}
	if _, err := qjobs.UpdateStatus(ctx, applied, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("the original's status: %v", err)
	}
	owner := metav1.OwnerReference{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob", Name: "moved",
		UID: applied.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	create := func(name string, labels map[string]string, owners []metav1.OwnerReference) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, OwnerReferences: owners},
			StringData: map[string]string{"password": "old"}}
		if _, err := suite.kube.CoreV1().Secrets(e.namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("moved-creds", map[string]string{qjv1.LabelPersistentSecretContainer: "gen", qjv1.LabelRemoteID: "db-1"}, nil)
	for v := 1; v <= 3; v++ {
		create("moved-cert-v"+strconv.Itoa(v), map[string]string{qjv1.LabelPersistentSecretContainer: "gen", qjv1.LabelRemoteID: "db-1",
			qjv1.LabelSecretKind: qjv1.SecretKindVersioned, qjv1.LabelSecretVersion: strconv.Itoa(v)}, []metav1.OwnerReference{owner})
	}

	start := time.Now()
	installCtx, cancel := context.WithTimeout(ctx, installTimeout+time.Minute)
	defer cancel()
	if err := installChart(installCtx, suite.chart, nil); err != nil {
		t.Fatalf("installing the chart in place of the original: %v", err)
	}
	t.Logf("figure: helm install over the original's state, ready: %s", ms(time.Since(start)))

	// Done stays done: the data that is there is the baseline.
	e.waitQJob("moved", "a baseline", func(q *qjv1.QuarksJob) (bool, string) {
		return q.Status.InputsHash != "", "no inputsHash yet"
	})
	e.staysAtRunCount("moved", 0)

	// A change runs it: the plain Secret is taken over, the versions continue.
	cm, err := suite.kube.CoreV1().ConfigMaps(e.namespace).Get(ctx, "moved-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["VALUE"] = "two"
	if _, err := suite.kube.CoreV1().ConfigMaps(e.namespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	q := e.waitRunFinished("moved", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	creds := e.secret("moved-creds")
	wantData(t, creds, map[string]string{"password": "two"})
	if creds.Annotations[qjv1.AnnotationOutputOf] != "moved" || len(creds.OwnerReferences) != 0 {
		t.Errorf("moved-creds after the take-over: annotations %v, owners %v", creds.Annotations, creds.OwnerReferences)
	}
	v4 := e.secret("moved-cert-v4")
	wantData(t, v4, map[string]string{"crt": "two"})
	for _, s := range []*corev1.Secret{creds, v4} {
		if s.Labels[qjv1.LabelRemoteID] != "db-1" || s.Labels[qjv1.LabelPersistentSecretContainer] != "gen" {
			t.Errorf("Secret %s labels %v: want the original's container-name and remote-id", s.Name, s.Labels)
		}
	}
	for v := 1; v <= 3; v++ {
		wantData(t, e.secret("moved-cert-v"+strconv.Itoa(v)), map[string]string{"password": "old"})
	}
	if events, ok := e.waitEvent("moved", "SecretAdopted", runTimeout); !ok {
		t.Errorf("no SecretAdopted Event; events: %v", events)
	}
	job, err := suite.kube.BatchV1().Jobs(e.namespace).Get(ctx, q.Status.LastRun.JobName, metav1.GetOptions{})
	if err == nil && (job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 1) {
		t.Errorf("the run's Job has backoffLimit %v, want 1 from spec.template.backoffLimit", job.Spec.BackoffLimit)
	}

	// Deleting the QuarksJob keeps its plain output (deletePolicy Retain, as the original); its
	// versions go with it.
	if err := qjobs.Delete(ctx, "moved", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, runTimeout)
	defer cancelWait()
	if err := poll(waitCtx, 500*time.Millisecond, func() (bool, string) {
		l, err := suite.kube.CoreV1().Secrets(e.namespace).List(waitCtx, metav1.ListOptions{LabelSelector: qjv1.LabelSecretKind})
		if err != nil {
			return false, err.Error()
		}
		return len(l.Items) == 0, fmt.Sprintf("%d versions left", len(l.Items))
	}); err != nil {
		t.Fatalf("the versions of the deleted QuarksJob: %v", err)
	}
	s, err := suite.kube.CoreV1().Secrets(e.namespace).Get(ctx, "moved-creds", metav1.GetOptions{})
	if err != nil || string(s.Data["password"]) != "two" {
		t.Fatalf("moved-creds after its QuarksJob was deleted: %v (err %v)", s, err)
	}
}
