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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	// largeJobs Jobs of largeJobBytes each; pods of the same size at the webhook.
	largeJobs, largeJobBytes = 40, 512 << 10
)

// testTenantAttacks plays a tenant against the shared controller and webhook and measures what it
// costs everyone else: the victim's exit → Secret latency without and during a flood of made-up
// tokens from floodPods pods of another namespace (none of the victim's uploads lost), a fan-out of
// fanOutFiles × fanOutKeys keys, largeJobs Jobs of largeJobBytes each, and large pods admitted in
// dry run at the webhook while the victim's next run starts. Throughout, the controller's and the
// webhook's RSS are sampled and their pods must not restart.
func testTenantAttacks(t *testing.T) {
	victim := newEnv(t, "victim", nil)
	attacker := newEnv(t, "attacker", nil)
	ctx := victim.ctx
	restartsBefore := map[string]int32{controllerSelector: restarts(t, ctx, controllerSelector), webhookSelector: restarts(t, ctx, webhookSelector)}
	controllerPeak, webhookPeak := sampleRSS(t, ctx, controllerDeployment), sampleRSS(t, ctx, webhookDeployment)

	calm := victim.exitToSecret("calm", victimUploads, attackUploadBatch)
	flooded := attacker.floodWhile(func() []time.Duration { return victim.exitToSecret("flooded", victimUploads, attackUploadBatch) })
	p := func(l []time.Duration, q float64) time.Duration { return l[int(float64(len(l)-1)*q)] }
	t.Logf("figure: victim exit → Secret, %d uploads each: calm p50 %s p99 %s; during a made-up-token flood from %d pods p50 %s p99 %s (p99 ratio %.2f)",
		victimUploads, ms(p(calm, .5)), ms(p(calm, .99)), floodPods, ms(p(flooded, .5)), ms(p(flooded, .99)),
		float64(p(flooded, .99))/float64(max(p(calm, .99), time.Millisecond)))

	attacker.hugeFanOut()

	before := controllerRSS(t, ctx)
	attacker.largeJobs()
	victim.apply("after-jobs", []byte(outputJobTo("after-jobs", "after-jobs-out", `echo '{"k":"v"}' > /mnt/quarks/out.json`, false)))
	victim.wantRun(victim.waitRunFinished("after-jobs", 1), 1, qjv1.RunSucceeded)
	grown := controllerRSS(t, ctx) - before
	t.Logf("figure: %d Jobs of %d KiB each in the attacker's namespace: the controller's RSS grew by %d MiB", largeJobs, largeJobBytes>>10, grown>>20)
	if total := int64(largeJobs * largeJobBytes); grown > total/2 {
		t.Errorf("the controller's RSS grew by %d MiB with %d MiB of the attacker's Jobs: it holds them", grown>>20, total>>20)
	}

	admitted := attacker.largeDryRunPodsWhile(func() {
		victim.apply("during-admissions", []byte(outputJobTo("during-admissions", "during-admissions-out", `echo '{"k":"v"}' > /mnt/quarks/out.json`, false)))
		victim.wantRun(victim.waitRunFinished("during-admissions", 1), 1, qjv1.RunSucceeded)
	})
	t.Logf("figure: large dry-run pods at the webhook: %s; the victim's run meanwhile Succeeded", admitted)

	for name, peak := range map[string]int64{"controller": controllerPeak(), "webhook": webhookPeak()} {
		t.Logf("figure: %s peak RSS during the attacks %d MiB", name, peak>>20)
	}
	if peak, limit := controllerPeak(), int64(256<<20); peak > limit*3/4 {
		t.Errorf("the controller's RSS reached %d MiB, more than 3/4 of its 256 MiB limit", peak>>20)
	}
	if peak, limit := webhookPeak(), int64(128<<20); peak > limit*3/4 {
		t.Errorf("the webhook's RSS reached %d MiB, more than 3/4 of its 128 MiB limit", peak>>20)
	}
	for selector, n := range restartsBefore {
		if after := restarts(t, ctx, selector); after != n {
			t.Errorf("pods %s restarted %d times during the attacks", selector, after-n)
		}
	}
}

// floodWhile floods the output endpoint with made-up tokens from floodPods pods of e's namespace
// while victim runs, and returns victim's result.
func (e *tenv) floodWhile(victim func() []time.Duration) []time.Duration {
	e.t.Helper()
	url := "https://quarks-job-output." + releaseNS + ".svc" + upload.Path
	flood := e.startProbes(floodPods, floodPodCPU, "flood", url, "10000000", "10m")
	e.waitProbesRunning(flood, floodPods)
	checksBefore, start := tokenChecks(e.t, e.ctx), time.Now()
	result := victim()
	checksAfter, took := tokenChecks(e.t, e.ctx), time.Since(start)
	e.deleteJob(flood)
	refused := checksAfter["not-issued"] - checksBefore["not-issued"]
	e.t.Logf("figure: during the flood, %.0f made-up tokens refused without a TokenReview (%.0f/s); reviews charged to addresses: %.0f",
		refused, refused/took.Seconds(), checksAfter["reviewed-address"]-checksBefore["reviewed-address"])
	if refused < floodPods {
		e.t.Errorf("only %.0f made-up tokens refused during the flood: the flood did not run", refused)
	}
	return result
}

// hugeFanOut runs the fanOutFiles × fanOutKeys fan-out: refused before any Secret is made.
func (e *tenv) hugeFanOut() {
	e.t.Helper()
	e.apply("fan-out", []byte(hugeFanOutJob("fanout")))
	q := e.waitRunFinished("fanout", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	msg := q.Status.LastRun.Message
	e.t.Logf("figure: the attacker's %d × %d-key fan-out: run 1 Failed: %q", fanOutFiles, fanOutKeys, msg)
	if want := fmt.Sprintf("(fan-out) has %d keys", fanOutKeys); !strings.Contains(msg, want) || !strings.Contains(msg, "more than the 10000 one upload may make") {
		e.t.Errorf("fan-out run message %q names neither the file's %d keys nor the bound", msg, fanOutKeys)
	}
	if n := e.secretCount(); n != 0 {
		e.t.Errorf("the refused fan-out wrote %d Secrets", n)
	}
}

// largeJobs creates largeJobs suspended Jobs of about largeJobBytes each (an environment
// variable), none of them a run's.
func (e *tenv) largeJobs() {
	e.t.Helper()
	for i := range largeJobs {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("large-%d", i)},
			Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "main", Image: "busybox",
					Env: []corev1.EnvVar{{Name: "LARGE", Value: strings.Repeat("x", largeJobBytes)}}}},
			}}}}
		if _, err := suite.kube.BatchV1().Jobs(e.namespace).Create(e.ctx, job, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// largeDryRunPodsWhile sends pods of about largeJobBytes each, labeled as a QuarksJob's (so the
// API server sends them to the webhook), in dry run, 16 at a time, while victim runs, and says how
// they were answered.
func (e *tenv) largeDryRunPodsWhile(victim func()) string {
	e.t.Helper()
	ctx, stop := context.WithCancel(e.ctx)
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "large-", Labels: map[string]string{qjv1.LabelQJobName: "attacker"}},
					Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "busybox",
						Env: []corev1.EnvVar{{Name: "LARGE", Value: strings.Repeat("x", largeJobBytes)}}}}}}
				_, err := suite.kube.CoreV1().Pods(e.namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				answer := "admitted"
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					answer = "refused: " + string(apierrors.ReasonForError(err))
				}
				mu.Lock()
				answers[answer]++
				mu.Unlock()
			}
		}()
	}
	victim()
	stop()
	wg.Wait()
	var parts []string
	for answer, n := range answers {
		parts = append(parts, fmt.Sprintf("%d %s", n, answer))
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
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

// restarts sums the restarts of the pods of a component (a label selector).
func restarts(t testing.TB, ctx context.Context, selector string) int32 {
	t.Helper()
	pods, err := suite.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: selector})
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

// sampleRSS reads a component's RSS (its Deployment's name) every second until the test ends;
// the returned function gives the peak so far.
func sampleRSS(t testing.TB, ctx context.Context, component string) func() int64 {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var peak int64
	sample := func() {
		series, err := scrape(ctx, component)
		if err != nil {
			return // a restart shows in the restart count
		}
		mu.Lock()
		peak = max(peak, int64(series["process_resident_memory_bytes"]))
		mu.Unlock()
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
