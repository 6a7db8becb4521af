package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
	"golang.org/x/sync/errgroup"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint/uploadtest"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// BenchmarkScale measures figures 9 (restart at scale) and 10 (memory) of
// docs/performance.md. The operator runs as its own process, built from this
// package, against a test API server whose audit log records every write
// the operator's user makes. With 0, 1,000 and 10,000 QuarksJobs in the
// watched namespace, all up to date (manual, no run, status written), it
// starts the operator, waits until it is ready, and reads its resident
// memory; the starts at 1,000 and 10,000 are restarts, whose writes and
// time to ready it reports. Then 1,000 of the QuarksJobs run and their pods
// upload at once, while their output endpoint's memory is sampled.
//
// Ready means: the readiness probe passes (the caches have synced), every
// QuarksJob has been reconciled since the start (the controller's reconcile
// count reaches their number), and the work queue is empty with no worker
// busy.
func BenchmarkScale(b *testing.B) {
	const small, large, burst, parallelism = 1000, 10000, 1000, 8
	auditLog := filepath.Join(b.TempDir(), "audit.log")
	cp := startControlPlane(b, auditWritesOf(b, operatorUser, auditLog))
	binary := buildOperator(b)
	certDir := b.TempDir()
	https, err := uploadtest.WriteServingCert(certDir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	for range b.N {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "scale-"}}
		must(b, cp.client.Create(ctx, ns))
		must(b, cp.client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: uploadtest.ServiceAccount}}))
		start := func(n int) *operatorProcess {
			p := startOperatorProcess(b, binary, cp.kubeconfig, ns.Name, certDir)
			p.waitReady(b, n)
			// The writes and memory of the start, not of what follows it.
			time.Sleep(2 * time.Second)
			return p
		}

		p := start(0)
		base := p.rss(b)
		createQJobs(b, cp.client, ns.Name, 0, small, parallelism)
		testenv.WaitSettled(b, cp.client, ns.Name, small)
		p.stop(b)

		p = start(small)
		restartSmall := p.ready
		writesSmall := countWrites(b, auditLog, operatorUser, p.started)
		rssSmall := p.rss(b)
		createQJobs(b, cp.client, ns.Name, small, large, parallelism)
		testenv.WaitSettled(b, cp.client, ns.Name, large)
		p.stop(b)

		p = start(large)
		restartLarge := p.ready
		writesLarge := countWrites(b, auditLog, operatorUser, p.started)
		rssLarge := p.rss(b)

		peak, took, retried := uploadBurst(b, cp, p, ns.Name, burst, parallelism, https)
		p.stop(b)

		mib := func(bytes uint64) float64 { return float64(bytes) / (1 << 20) }
		b.ReportMetric(restartSmall.Seconds(), "restart-1k-ready-s")
		b.ReportMetric(float64(writesSmall), "restart-1k-writes")
		b.ReportMetric(restartLarge.Seconds(), "restart-10k-ready-s")
		b.ReportMetric(float64(writesLarge), "restart-10k-writes")
		b.ReportMetric(mib(base), "rss-0-MiB")
		b.ReportMetric(mib(rssSmall), "rss-1k-MiB")
		b.ReportMetric(mib(rssLarge), "rss-10k-MiB")
		b.ReportMetric(mib(peak), "rss-burst-peak-MiB")
		b.ReportMetric(mib(peak)-mib(rssLarge), "rss-burst-over-10k-MiB")
		perSmall := (float64(rssSmall) - float64(base)) / small
		perLarge := (float64(rssLarge) - float64(base)) / large
		b.ReportMetric(perSmall, "rss-bytes-per-qjob-1k")
		b.ReportMetric(perLarge, "rss-bytes-per-qjob-10k")
		b.ReportMetric(perLarge/perSmall, "rss-growth-1k-to-10k")
		b.ReportMetric(took.Seconds(), "burst-s")
		b.ReportMetric(float64(retried), "burst-uploads-retried")
	}
}

// scaleQJob is QuarksJob i of the scale benchmark: an errand whose container
// declares output to its own Secret.
func scaleQJob(ns string, i int) *qjv1.QuarksJob {
	return &qjv1.QuarksJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("q%d", i)},
		Spec: qjv1.QuarksJobSpec{
			Trigger: qjv1.Trigger{Strategy: qjv1.StrategyManual},
			Output:  &qjv1.Output{OutputMap: qjv1.OutputMap{"main": {"out.json": {Name: fmt.Sprintf("out-%d", i)}}}},
			Template: qjv1.JobTemplate{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:      corev1.RestartPolicyNever,
				ServiceAccountName: uploadtest.ServiceAccount,
				Containers:         []corev1.Container{{Name: "main", Image: "busybox"}},
			}}}},
		},
	}
}

// createQJobs creates QuarksJobs from (inclusive) to to (exclusive).
func createQJobs(b *testing.B, c client.Client, ns string, from, to, parallelism int) {
	b.Helper()
	g := errgroup.Group{}
	g.SetLimit(parallelism)
	for i := from; i < to; i++ {
		g.Go(func() error { return c.Create(context.Background(), scaleQJob(ns, i)) })
	}
	must(b, g.Wait())
}

// uploadBurst runs n of the QuarksJobs, makes a pod for each run's Job whose
// containers have exited, and sends their n uploads at once, as n
// persisters would. It returns the operator's peak resident memory during
// the burst (sampled every 20 ms), how long the burst took until every
// upload was acknowledged, and how many uploads were asked to retry.
func uploadBurst(b *testing.B, cp *controlPlane, p *operatorProcess, ns string, n, parallelism int, https *http.Client) (uint64, time.Duration, int64) {
	b.Helper()
	ctx := context.Background()
	g := errgroup.Group{}
	g.SetLimit(parallelism)
	for i := range n {
		g.Go(func() error {
			return cp.client.Patch(ctx, &qjv1.QuarksJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("q%d", i)}},
				client.RawPatch(types.MergePatchType, []byte(`{"spec":{"trigger":{"strategy":"now"}}}`)))
		})
	}
	must(b, g.Wait())
	jobs := waitRunsStarted(b, cp.client, ns, n)

	bearers := make([]string, n)
	for i := range jobs {
		g.Go(func() error {
			job := &jobs[i]
			owner := &metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptr.To(true)}
			pod := uploadtest.Pod(ns, job.Name+"-pod", owner, "persister", "main")
			if err := cp.client.Create(ctx, pod); err != nil {
				return err
			}
			uploadtest.Exit(pod, map[string]int32{"main": 0})
			if err := cp.client.Status().Update(ctx, pod); err != nil {
				return err
			}
			var err error
			bearers[i], err = uploadtest.Token(ctx, cp.clientset, pod, upload.Audience)
			return err
		})
	}
	must(b, g.Wait())

	sampling, sampled := context.WithCancel(ctx)
	var peak atomic.Uint64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for sampling.Err() == nil {
			if rss := p.rss(b); rss > peak.Load() {
				peak.Store(rss)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	uploader := uploadtest.Client{URL: "https://" + p.outputAddr + upload.Path, HTTP: https}
	var retried atomic.Int64
	begin := make(chan struct{})
	uploads := errgroup.Group{}
	for i := range n {
		uploads.Go(func() error {
			<-begin
			retries, err := uploader.Send(ctx, bearers[i], uploadtest.Files(map[string]map[string]string{"main": {"out.json": fmt.Sprintf(`{"run":"%d"}`, i)}}))
			if retries > 0 {
				retried.Add(1)
			}
			return err
		})
	}
	began := time.Now()
	close(begin)
	err := uploads.Wait()
	took := time.Since(began)
	sampled()
	sampler.Wait()
	must(b, err)
	return peak.Load(), took, retried.Load()
}

// waitRunsStarted waits until n Jobs of ns are resumed (their runs started)
// and returns them.
func waitRunsStarted(b *testing.B, c client.Client, ns string, n int) []batchv1.Job {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list := &batchv1.JobList{}
		must(b, c.List(context.Background(), list, client.InNamespace(ns)))
		var started []batchv1.Job
		for _, job := range list.Items {
			if job.Spec.Suspend == nil || !*job.Spec.Suspend {
				started = append(started, job)
			}
		}
		if len(started) == n {
			return started
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d runs started in 5 minutes", len(started), n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// chartMemoryLimit is the controller's memory limit in the chart's values.yaml.
const chartMemoryLimit = 256 << 20

// operatorProcess is the operator binary running against the control plane.
type operatorProcess struct {
	cmd        *exec.Cmd
	started    time.Time
	ready      time.Duration
	metrics    string
	health     string
	outputAddr string
}

// startOperatorProcess starts the operator watching ns, with its metrics,
// health and output endpoints on free loopback addresses.
func startOperatorProcess(b *testing.B, binary, kubeconfig, ns, certDir string) *operatorProcess {
	b.Helper()
	p := &operatorProcess{metrics: freeAddress(b), health: freeAddress(b), outputAddr: freeAddress(b)}
	p.cmd = exec.Command(binary, "--kubeconfig", kubeconfig, "--watch-namespaces", ns, "--log-level", "error",
		"--metrics-bind-address", p.metrics, "--health-probe-bind-address", p.health,
		"--output-bind-address", p.outputAddr, "--output-cert-dir", certDir)
	p.cmd.Stderr = os.Stderr
	// The soft memory limit the operator sets itself in the chart's pod (90%
	// of its memory limit), which this process has no cgroup to read from.
	p.cmd.Env = append(os.Environ(), fmt.Sprintf("GOMEMLIMIT=%d", chartMemoryLimit*9/10))
	p.started = time.Now()
	must(b, p.cmd.Start())
	b.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// waitReady waits until the operator is ready with n QuarksJobs (see
// BenchmarkScale) and records how long that took from its start.
func (p *operatorProcess) waitReady(b *testing.B, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	why := ""
	for time.Now().Before(deadline) {
		if why = p.notReady(n); why == "" {
			p.ready = time.Since(p.started)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("the operator is not ready after 5 minutes: %s", why)
}

// notReady says why the operator is not ready with n QuarksJobs, or "".
func (p *operatorProcess) notReady(n int) string {
	resp, err := http.Get("http://" + p.health + "/readyz")
	if err != nil {
		return err.Error()
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("readyz: HTTP %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return err.Error()
	}
	// sum adds the values of a metric's series whose label label is value.
	sum := func(name, label, value string) float64 {
		total := 0.0
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
		return total
	}
	reconciled := sum("controller_runtime_reconcile_total", "controller", "quarksjob")
	queued := sum("workqueue_depth", "name", "quarksjob")
	busy := sum("controller_runtime_active_workers", "controller", "quarksjob")
	if reconciled < float64(n) || queued > 0 || busy > 0 {
		return fmt.Sprintf("%.0f of %d QuarksJobs reconciled, %.0f queued, %.0f workers busy", reconciled, n, queued, busy)
	}
	return ""
}

// rss is the operator's resident memory in bytes.
func (p *operatorProcess) rss(b *testing.B) uint64 {
	b.Helper()
	proc, err := procfs.NewProc(p.cmd.Process.Pid)
	must(b, err)
	status, err := proc.NewStatus()
	must(b, err)
	return status.VmRSS
}

// stop stops the operator as Kubernetes does, with SIGTERM, and waits for it.
func (p *operatorProcess) stop(b *testing.B) {
	b.Helper()
	must(b, p.cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		must(b, err)
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		b.Fatal("the operator did not stop within a minute of SIGTERM")
	}
}

// auditWritesOf makes the API server write an audit log of the writes
// (create, update, patch, delete) that user makes, and of nothing else.
func auditWritesOf(b *testing.B, user, logPath string) func(*envtest.Environment) {
	policy := fmt.Sprintf(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [%q]
  verbs: [create, update, patch, delete, deletecollection]
- level: None
`, user)
	policyPath := filepath.Join(b.TempDir(), "audit-policy.yaml")
	must(b, os.WriteFile(policyPath, []byte(policy), 0o600))
	return func(env *envtest.Environment) {
		env.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policyPath).
			Set("audit-log-path", logPath)
	}
}

// auditEvent holds the fields of an audit log line that countWrites reads.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
}

// countWrites counts the writes that user made since the given time, by the
// API server's audit log (see auditWritesOf), and logs them when there are any.
func countWrites(b *testing.B, logPath, user string, since time.Time) int {
	b.Helper()
	f, err := os.Open(logPath)
	must(b, err)
	defer func() { _ = f.Close() }()
	writes := 0
	lines := bufio.NewScanner(f)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		var e auditEvent
		must(b, json.Unmarshal(lines.Bytes(), &e))
		if e.User.Username != user || e.RequestReceivedTimestamp.Before(since) {
			continue
		}
		writes++
		if writes <= 10 {
			b.Logf("write since the start: %s %s/%s %s", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Subresource, e.ObjectRef.Name)
		}
	}
	must(b, lines.Err())
	return writes
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
