//go:build e2e

package product_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
        metadata:
          labels:
            e2e-many-pods: %[1]s
        spec:
          restartPolicy: Never
          # On a cluster of several nodes (kind) the pods of one run land on different nodes,
          # so their uploads cross nodes; on one node this changes nothing.
          topologySpreadConstraints:
          - maxSkew: 1
            topologyKey: kubernetes.io/hostname
            whenUnsatisfiable: DoNotSchedule
            labelSelector:
              matchLabels:
                e2e-many-pods: %[1]s
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
	wantAcrossNodes(t, e.runPods("parallel", 1))

	q = e.waitRunFinished("indexed", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	msg := q.Status.LastRun.Message
	if !strings.Contains(msg, "index 1 (pod indexed-1-1-") || !strings.Contains(msg, `output file "out.json" of container "work" was not written`) || strings.Contains(msg, "index 0") {
		t.Errorf("indexed run 1 message %q; want index 1 and its file named, and not index 0", msg)
	}
	t.Logf("indexed run 1: %s", msg)
}

// wantAcrossNodes checks, on a cluster with several schedulable nodes, that the pods ran on
// different nodes and at least one on another node than the controller: their output crossed the
// pod network to the output endpoint. On one node it logs where they ran.
func wantAcrossNodes(t *testing.T, pods []podRecord) {
	t.Helper()
	nodes, err := suite.kube.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	schedulable := 0
	for _, n := range nodes.Items {
		if !n.Spec.Unschedulable && !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Effect == corev1.TaintEffectNoSchedule }) {
			schedulable++
		}
	}
	controller := onlyPod(t, controllerSelector).Spec.NodeName
	ran := map[string]bool{}
	elsewhere := false
	for _, p := range pods {
		ran[p.pod.Spec.NodeName] = true
		elsewhere = elsewhere || p.pod.Spec.NodeName != controller
	}
	t.Logf("figure: %d schedulable nodes; the run's %d pods ran on %v, the controller on %s", schedulable, len(pods), slices.Sorted(maps.Keys(ran)), controller)
	if schedulable < 2 {
		return
	}
	if len(ran) != len(pods) || !elsewhere {
		t.Errorf("the run's pods ran on %v and the controller on %s; want each pod on its own node, one of them not the controller's", slices.Sorted(maps.Keys(ran)), controller)
	}
}
