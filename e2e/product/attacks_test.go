//go:build e2e

package product_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// The attack suite's sizes: bounded, so it fits the end-to-end run.
const (
	// victimUploads is how many uploads the victim makes in each phase, attackUploadBatch at a time.
	victimUploads, attackUploadBatch = 30, 10
	// floodPods is how many pods of the attacker's namespace flood the endpoint, each with 16
	// connections at the highest rate its CPU share allows (floodPodCPU).
	floodPods   = 20
	floodPodCPU = "50m"
	// fanOutFiles × fanOutKeys is the attacker's fan-out: the upload that OOM-killed the
	// controller before its work was bounded.
	fanOutFiles, fanOutKeys = 4, 75000
)

// testTenantAttacks plays a tenant against the shared controller and measures what it costs
// everyone else: the victim's exit → Secret latency without and during a flood of made-up tokens
// from floodPods pods of another namespace (none of the victim's uploads lost), then a fan-out of
// fanOutFiles × fanOutKeys keys. Throughout, the controller's RSS is sampled and its pods must not
// restart.
func testTenantAttacks(t *testing.T) {
	victim := newEnv(t, "victim", nil)
	attacker := newEnv(t, "attacker", nil)
	restarts := controllerRestarts(t, victim.ctx)
	rss := sampleControllerRSS(t, victim.ctx)

	calm := victim.exitToSecret("calm", victimUploads, attackUploadBatch)

	url := "https://quarks-job-output." + releaseNS + ".svc" + upload.Path
	flood := attacker.startProbes(floodPods, floodPodCPU, "flood", url, "10000000", "10m")
	attacker.waitProbesRunning(flood, floodPods)
	checksBefore, floodStart := tokenChecks(t, victim.ctx), time.Now()
	flooded := victim.exitToSecret("flooded", victimUploads, attackUploadBatch)
	checksAfter, floodTook := tokenChecks(t, victim.ctx), time.Since(floodStart)
	attacker.deleteJob(flood)

	p := func(l []time.Duration, q float64) time.Duration { return l[int(float64(len(l)-1)*q)] }
	t.Logf("figure: victim exit → Secret, %d uploads each: calm p50 %s p99 %s; during a made-up-token flood from %d pods p50 %s p99 %s (p99 ratio %.2f)",
		victimUploads, ms(p(calm, .5)), ms(p(calm, .99)), floodPods, ms(p(flooded, .5)), ms(p(flooded, .99)),
		float64(p(flooded, .99))/float64(max(p(calm, .99), time.Millisecond)))
	refused := checksAfter["not-issued"] + checksAfter["throttled"] - checksBefore["not-issued"] - checksBefore["throttled"]
	t.Logf("figure: during the flood, %.0f made-up tokens refused without a TokenReview (%.0f/s); reviews charged to addresses: %.0f",
		refused, refused/floodTook.Seconds(), checksAfter["reviewed-address"]-checksBefore["reviewed-address"])
	if refused < floodPods {
		t.Errorf("only %.0f made-up tokens refused during the flood: the flood did not run", refused)
	}

	attacker.apply("fan-out", []byte(hugeFanOutJob("fanout")))
	q := attacker.waitRunFinished("fanout", 1)
	attacker.wantRun(q, 1, qjv1.RunFailed)
	msg := q.Status.LastRun.Message
	t.Logf("figure: the attacker's %d × %d-key fan-out: run 1 Failed: %q", fanOutFiles, fanOutKeys, msg)
	if want := fmt.Sprintf("(fan-out) has %d keys", fanOutKeys); !strings.Contains(msg, want) || !strings.Contains(msg, "more than the 10000 one upload may make") {
		t.Errorf("fan-out run message %q names neither the file's %d keys nor the bound", msg, fanOutKeys)
	}
	if n := attacker.secretCount(); n != 0 {
		t.Errorf("the refused fan-out wrote %d Secrets", n)
	}

	peak := rss()
	t.Logf("figure: controller peak RSS during the attacks %d MiB; restarts %d", peak>>20, controllerRestarts(t, victim.ctx)-restarts)
	if n := controllerRestarts(t, victim.ctx) - restarts; n != 0 {
		t.Errorf("the controller restarted %d times during the attacks", n)
	}
	if limit := int64(256 << 20); peak > limit*3/4 {
		t.Errorf("the controller's RSS reached %d MiB, more than 3/4 of its 256 MiB limit", peak>>20)
	}
}

// hugeFanOutJob is a QuarksJob whose one container writes fanOutFiles fan-out files of
// fanOutKeys keys each (empty values, about 1 MiB a file).
func hugeFanOutJob(name string) string {
	var outputs, files strings.Builder
	for i := range fanOutFiles {
		fmt.Fprintf(&outputs, "        f%d.json:\n          name: %s-f%d\n          persistencemethod: fan-out\n", i, name, i)
		fmt.Fprintf(&files, `awk 'BEGIN{printf "{"; for(i=0;i<%d;i++){printf "%%s\"a%%d\":\"\"", (i?",":""), i}; printf "}"}' > /tmp/f; mv /tmp/f /mnt/quarks/f%d.json; `, fanOutKeys, i)
	}
	return fmt.Sprintf(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: %s
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      work:
%s  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: work
            image: busybox
            command: ["sh", "-c", %q]
`, name, outputs.String(), files.String())
}

// exitToSecret runs n QuarksJobs named prefix-i, batch at a time, whose one container writes its
// output and exits at once, and returns each container's exit → Secret time, sorted. Every run
// must succeed: an upload lost fails the test.
func (e *tenv) exitToSecret(prefix string, n, batch int) []time.Duration {
	e.t.Helper()
	var latencies []time.Duration
	for first := 0; first < n; first += batch {
		var names []string
		for i := first; i < min(first+batch, n); i++ {
			name := fmt.Sprintf("%s-%d", prefix, i)
			names = append(names, name)
			e.apply(name, []byte(outputJobTo(name, name+"-out", `echo '{"k":"v"}' > /mnt/quarks/out.json`, false)))
		}
		for _, name := range names {
			e.wantRun(e.waitRunFinished(name, 1), 1, qjv1.RunSucceeded)
			pods := e.runPods(name, 1)
			if len(pods) != 1 {
				e.t.Fatalf("%s: %d pods", name, len(pods))
			}
			exited, ok := pods[0].exited["work"]
			written, seen := e.secretSeen(name + "-out")
			if !ok || !seen {
				e.t.Fatalf("%s: container exit seen %v, Secret seen %v", name, ok, seen)
			}
			latencies = append(latencies, written.Sub(exited))
		}
	}
	slices.Sort(latencies)
	return latencies
}

// startProbes starts a plain Job of pods pods running the e2e probe with args, each limited to
// cpu.
func (e *tenv) startProbes(pods int32, cpu string, args ...string) *batchv1.Job {
	e.t.Helper()
	job := probeJob(probeImage(e.t), args...)
	job.Spec.Parallelism, job.Spec.Completions = ptr.To(pods), ptr.To(pods)
	job.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	job, err := suite.kube.BatchV1().Jobs(e.namespace).Create(e.ctx, job, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return job
}

// waitProbesRunning waits until n pods of the probe Job run.
func (e *tenv) waitProbesRunning(job *batchv1.Job, n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, runTimeout)
	defer cancel()
	if err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		pods, err := suite.kube.CoreV1().Pods(e.namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job.Name})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == n, fmt.Sprintf("%d of %d probe pods running", running, n)
	}); err != nil {
		e.t.Fatalf("probe Job %s: %v", job.Name, err)
	}
}

// deleteJob deletes a Job and its pods.
func (e *tenv) deleteJob(job *batchv1.Job) {
	e.t.Helper()
	if err := suite.kube.BatchV1().Jobs(e.namespace).Delete(e.ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationForeground), GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		e.t.Fatal(err)
	}
}

// secretCount counts the Secrets in the namespace that the operator wrote.
func (e *tenv) secretCount() int {
	e.t.Helper()
	list, err := suite.kube.CoreV1().Secrets(e.namespace).List(e.ctx, metav1.ListOptions{LabelSelector: qjv1.LabelPersistentSecretContainer})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list.Items)
}

// controllerRestarts sums the restarts of the controller's pods.
func controllerRestarts(t testing.TB, ctx context.Context) int32 {
	t.Helper()
	pods, err := suite.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: controllerSelector})
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
	}
	return n
}

// sampleControllerRSS reads the controller's RSS every second until the test ends; the returned
// function gives the peak so far.
func sampleControllerRSS(t testing.TB, ctx context.Context) func() int64 {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var peak int64
	sample := func() {
		raw, err := suite.kube.CoreV1().Services(releaseNS).ProxyGet("http", controllerDeployment+"-metrics", "metrics", "/metrics", nil).DoRaw(ctx)
		if err != nil {
			return // a restart shows in the restart count
		}
		for _, line := range strings.Split(string(raw), "\n") {
			var v float64
			if _, err := fmt.Sscanf(line, "process_resident_memory_bytes %g", &v); err == nil {
				mu.Lock()
				peak = max(peak, int64(v))
				mu.Unlock()
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			sample()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() int64 {
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
