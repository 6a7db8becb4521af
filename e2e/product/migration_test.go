//go:build e2e

package product_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// originalQJob is shaped like the original quarks-job's examples: backoffLimit directly under
// spec.template, a one-off already done, outputs a plain and a versioned Secret.
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
            envFrom:
            - configMapRef:
                name: moved-config
            command: ["sh", "-c", "echo \"{\\\"password\\\":\\\"$VALUE\\\"}\" > /mnt/quarks/creds.json; echo \"{\\\"crt\\\":\\\"$VALUE\\\"}\" > /mnt/quarks/cert.json"]
`

// testMovedFromOriginal starts from what the original operator leaves in a namespace (its
// output Secrets without owner, versions v1..v3, a done one-off) and checks that the original's
// manifest is accepted, nothing re-runs until the configuration changes, the first run takes the
// plain Secret over and continues the versions, and deleting the QuarksJob keeps the plain Secret.
func testMovedFromOriginal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "moved", nil)
	ctx := e.ctx
	original := impersonating(t, versionedSecretWriter) // as the original operator wrote them
	create := func(name string, labels map[string]string, data string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, StringData: map[string]string{"password": data}}
		if _, err := original.CoreV1().Secrets(e.namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("moved-creds", map[string]string{qjv1.LabelPersistentSecretContainer: "gen"}, "old")
	for v := 1; v <= 3; v++ {
		create("moved-cert-v"+strconv.Itoa(v), map[string]string{qjv1.LabelPersistentSecretContainer: "gen",
			qjv1.LabelSecretKind: qjv1.SecretKindVersioned, qjv1.LabelSecretVersion: strconv.Itoa(v)}, "old")
	}
	e.apply("configmap", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moved-config\ndata:\n  VALUE: one\n"))
	e.apply("original manifest", []byte(originalQJob))

	// Done stays done: the data that is there is the baseline.
	e.waitQJob("moved", "a baseline", runTimeout, func(q *qjv1.QuarksJob) (bool, string) {
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
	wantData(t, e.secret("moved-cert-v4"), map[string]string{"crt": "two"})
	if events, ok := e.waitEvent("QuarksJob", "moved", "SecretAdopted", runTimeout); !ok {
		t.Errorf("no SecretAdopted Event; events: %v", events)
	}
	job, err := suite.kube.BatchV1().Jobs(e.namespace).Get(ctx, q.Status.LastRun.JobName, metav1.GetOptions{})
	if err == nil && (job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 1) {
		t.Errorf("the run's Job has backoffLimit %v, want 1 from spec.template.backoffLimit", job.Spec.BackoffLimit)
	}

	// Deleting the QuarksJob keeps its plain output (deletePolicy Retain, as the original).
	if err := suite.dynamic.Resource(qjobGVR).Namespace(e.namespace).Delete(ctx, "moved", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	if err := poll(waitCtx, 500*time.Millisecond, func() (bool, string) {
		_, err := e.qjob("moved")
		return apierrors.IsNotFound(err), "the QuarksJob still exists"
	}); err != nil {
		t.Fatal(err)
	}
	// The garbage collector has its chance to act on owned objects meanwhile.
	for deadline := time.Now().Add(quiet); time.Now().Before(deadline); {
		s, err := suite.kube.CoreV1().Secrets(e.namespace).Get(ctx, "moved-creds", metav1.GetOptions{})
		if err != nil || !strings.Contains(string(s.Data["password"]), "two") {
			t.Fatalf("moved-creds after its QuarksJob was deleted: %v (err %v)", s, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
