//go:build e2e

package product_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// readerJob is a one-off, re-run on configuration changes, whose pod reads the key "value" of
// the named object into its environment.
func readerJob(name, kind, object string) string {
	ref := "configMapKeyRef"
	if kind == "Secret" {
		ref = "secretKeyRef"
	}
	return fmt.Sprintf(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: %s
spec:
  trigger:
    strategy: once
  updateOnConfigChange: true
  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: reader
            image: busybox
            command: ["sh", "-c", "echo read $VALUE"]
            env:
            - name: VALUE
              valueFrom:
                %s:
                  name: %s
                  key: value
`, name, ref, object)
}

// testCreatedBeforeItsConfigMap: a QuarksJob whose ConfigMap does not exist yet waits, saying so
// in a condition, and runs once the ConfigMap is created.
func testCreatedBeforeItsConfigMap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "later", nil)
	e.apply("reader", []byte(readerJob("early", "ConfigMap", "later")))
	e.waitQJob("early", "WaitingForReferences naming the ConfigMap", func(q *qjv1.QuarksJob) (bool, string) {
		c := meta.FindStatusCondition(q.Status.Conditions, "WaitingForReferences")
		if c == nil || c.Status != metav1.ConditionTrue || c.Message != "the run starts when these exist: ConfigMap later" {
			return false, fmt.Sprintf("condition %+v", c)
		}
		return true, ""
	})
	e.staysAtRunCount("early", 0)
	e.apply("configmap", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\ndata:\n  value: here\n"))
	e.wantRun(e.waitRunFinished("early", 1), 1, qjv1.RunSucceeded)
}

// testVersionedSecretReference: a job reading foo-v1 reads the newest version; a new foo-v3 runs
// it again reading foo-v3; new versions of other families (my-foo, foobar) run nothing.
func testVersionedSecretReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "versioned", nil)
	// The family is written by another operator, as quarks-secret does.
	writer := impersonating(t, versionedSecretWriter)
	versioned := func(name, version string) {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			qjv1.LabelSecretKind: qjv1.SecretKindVersioned, qjv1.LabelSecretVersion: version}},
			StringData: map[string]string{"value": name}}
		if _, err := writer.CoreV1().Secrets(e.namespace).Create(e.ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Secret %s: %v", name, err)
		}
	}
	readSecret := func(run int64) string {
		pod := e.onlyRunPod("foo-reader", run).pod
		for _, c := range pod.Spec.Containers {
			if c.Name == "reader" {
				return c.Env[0].ValueFrom.SecretKeyRef.Name
			}
		}
		return ""
	}
	versioned("foo-v1", "1")
	versioned("foo-v2", "2")
	e.apply("reader", []byte(readerJob("foo-reader", "Secret", "foo-v1")))
	e.wantRun(e.waitRunFinished("foo-reader", 1), 1, qjv1.RunSucceeded)
	if got := readSecret(1); got != "foo-v2" {
		t.Errorf("run 1 read %s, want the newest version foo-v2", got)
	}

	versioned("foo-v3", "3")
	q := e.waitRunFinished("foo-reader", 2)
	e.wantRun(q, 2, qjv1.RunSucceeded)
	if q.Status.LastRun.Trigger != qjv1.RunTriggerConfigChange {
		t.Errorf("run 2 trigger %s, want ConfigChange", q.Status.LastRun.Trigger)
	}
	if got := readSecret(2); got != "foo-v3" {
		t.Errorf("run 2 read %s, want foo-v3", got)
	}

	versioned("my-foo-v9", "9")
	versioned("foobar-v3", "3")
	e.staysAtRunCount("foo-reader", 2)
}
