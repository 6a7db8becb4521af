//go:build e2e

package product_test

import (
	"fmt"
	"strings"
	"testing"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// manyPodsJob is a one-off whose Job has several pods (jobSpec is indented for the Job's spec);
// container "work" runs script and declares out.json as the versioned Secret "<name>-out".
func manyPodsJob(name, jobSpec, script string) string {
	return fmt.Sprintf(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: %[1]s
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      work:
        out.json:
          name: %[1]s-out
          versioned: true
  template:
    spec:
      backoffLimit: 0
%[2]s
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: work
            image: busybox
            command: ["sh", "-c", %[3]q]
`, name, jobSpec, script)
}

// testManyPods: a run's result combines every pod its Job needed. Two parallel completions that
// both write their output succeed with one version each; an Indexed Job whose index 1 writes
// nothing fails, naming index 1.
func testManyPods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "manypods", nil)
	e.apply("parallel", []byte(manyPodsJob("parallel", "      completions: 2\n      parallelism: 2",
		`echo "{\"pod\":\"$HOSTNAME\"}" > /mnt/quarks/out.json`)))
	e.apply("indexed", []byte(manyPodsJob("indexed", "      completions: 2\n      parallelism: 2\n      completionMode: Indexed",
		`if [ "$JOB_COMPLETION_INDEX" = 0 ]; then echo '{"index":"0"}' > /mnt/quarks/out.json; fi`)))

	q := e.waitRunFinished("parallel", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	if n := len(q.Status.LastRun.Uploads); n != 2 {
		t.Errorf("parallel: %d uploads recorded, want one per pod: %+v", n, q.Status.LastRun.Uploads)
	}
	for _, v := range []string{"parallel-out-v1", "parallel-out-v2"} {
		if s := e.waitSecret(v); !strings.HasPrefix(string(s.Data["pod"]), "parallel-1-") {
			t.Errorf("%s holds %q, want a pod's name", v, s.Data["pod"])
		}
	}

	q = e.waitRunFinished("indexed", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	msg := q.Status.LastRun.Message
	if !strings.Contains(msg, "index 1 (pod indexed-1-1-") || !strings.Contains(msg, `output file "out.json" of container "work" was not written`) || strings.Contains(msg, "index 0") {
		t.Errorf("indexed run 1 message %q; want index 1 and its file named, and not index 0", msg)
	}
	t.Logf("indexed run 1: %s", msg)
}
