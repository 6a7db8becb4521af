//go:build e2e

package product_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// testFanOutOf5000 runs a pod whose fan-out file has 5,000 keys: 5,000 Secrets are written, the
// run succeeds, and its record lists at most qjv1.MaxRecordedSecrets of them with the count. The
// persister's upload fits in the pod's default grace period (30 s).
func testFanOutOf5000(t *testing.T) {
	const keys = 5000
	e := newEnv(t, "fanout", nil)
	start := time.Now()
	e.apply("qjob", fmt.Appendf(nil, `
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: many
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      gen:
        many.json:
          name: many
          persistencemethod: fan-out
  template:
    spec:
      template:
        spec:
          containers:
          - name: gen
            image: busybox
            command: ["sh", "-c", "i=0; sep=''; printf '{' > /tmp/o; while [ $i -lt %d ]; do printf '%%s\"k%%d\":\"v%%d\"' \"$sep\" $i $i >> /tmp/o; sep=','; i=$((i+1)); done; printf '}' >> /tmp/o; mv /tmp/o /mnt/quarks/many.json"]
`, keys))
	q := e.waitRunFinished("many", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	t.Logf("figure: created → run of a %d-key fan-out Succeeded: %s", keys, ms(time.Since(start)))
	if events, ok := e.waitEvent("many", "and 4990 more", runTimeout); !ok {
		t.Errorf("no OutputPersisted Event naming 10 Secrets and counting the rest: %q", events)
	}

	secrets, err := suite.kube.CoreV1().Secrets(e.namespace).List(e.ctx, metav1.ListOptions{LabelSelector: qjv1.LabelPersistentSecretContainer + "=gen"})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != keys {
		t.Errorf("%d Secrets written, want %d", len(secrets.Items), keys)
	}
	last := q.Status.LastRun
	if len(last.Uploads) != 1 || last.Uploads[0].WrittenSecrets() != keys || len(last.Uploads[0].Secrets) > qjv1.MaxRecordedSecrets {
		t.Errorf("the run's record: %d uploads, first %+v", len(last.Uploads), last.Uploads)
	}
	if q.Status.SecretCount != keys || len(q.Status.Secrets) > qjv1.MaxRecordedSecrets {
		t.Errorf("status: secretCount %d, %d listed", q.Status.SecretCount, len(q.Status.Secrets))
	}
	size, _ := json.Marshal(q)
	t.Logf("figure: the QuarksJob after a %d-Secret run is %d bytes", keys, len(size))
}
