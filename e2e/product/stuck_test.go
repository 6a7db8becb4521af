//go:build e2e

package product_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// testImageCannotBePulled: a run whose pod waits for an image that does not exist fails after
// the QuarksJob's runStartTimeout with the kubelet's pull message, and its Job is suspended.
func testImageCannotBePulled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "noimage", nil)
	image := "127.0.0.1:1/quarks-job-e2e/missing:none" // nothing listens: the pull fails at once
	if suite.registry != "" {
		image = suite.registry + "/quarks-job-e2e/missing:none" // the registry answers: not found
	}
	// Long enough for a loaded node (3 kind nodes on 2 cores) to create the pod's sandbox and
	// try the pull: a timeout before that has no pull reason to report.
	const timeout = "45s"
	start := time.Now()
	e.apply("qjob", fmt.Appendf(nil, `
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: noimage
spec:
  runStartTimeout: %s
  trigger:
    strategy: once
  template:
    spec:
      template:
        spec:
          containers:
          - name: main
            image: %s
`, timeout, image))
	q := e.waitRunFinished("noimage", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	msg := q.Status.LastRun.Message
	t.Logf("figure: created → run Failed (runStartTimeout %s): %s; message %q", timeout, ms(time.Since(start)), msg)
	if !strings.Contains(msg, "within "+timeout) || !strings.Contains(msg, "ImagePull") && !strings.Contains(msg, "ErrImagePull") {
		t.Errorf("run 1 message %q; want the timeout and the pull reason", msg)
	}
	// The controller records the result first and suspends the Job in the reconcile that
	// follows: nothing of the ended run goes on.
	ctx, cancel := context.WithTimeout(e.ctx, runTimeout)
	defer cancel()
	jobName := q.Status.LastRun.JobName
	if err := poll(ctx, 250*time.Millisecond, func() (bool, string) {
		job, err := suite.kube.BatchV1().Jobs(e.namespace).Get(ctx, jobName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return job.Spec.Suspend != nil && *job.Spec.Suspend, "not suspended"
	}); err != nil {
		t.Errorf("the failed run's Job %s: %v", jobName, err)
	}
	if events, ok := e.waitEvent("noimage", "RunFailed", runTimeout); !ok {
		t.Errorf("no RunFailed Event: %v", events)
	}
}
