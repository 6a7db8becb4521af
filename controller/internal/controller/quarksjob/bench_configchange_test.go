package quarksjob

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
)

// BenchmarkConfigChangeFanOut changes one ConfigMap that 500 one-offs
// reference and measures the time until all 500 runs have started (their
// Jobs resumed), exactly 500, next to plain calls making the API writes that
// starting 500 runs needs (the floor, as in BenchmarkFanIn).
func BenchmarkConfigChangeFanOut(b *testing.B) {
	const total, parallelism = 500, 8
	for range b.N {
		servingQuarksJobs(b)
		op := startOperator(b, nil)
		ns := namespace(b)
		createConfigMap(b, ns, "shared", map[string]string{"k": "0"})
		jw := watchJobs(b, ns)
		inParallel(b, total, parallelism, func(i int) error {
			return k8s.Create(ctx, configJob(ns, fmt.Sprintf("q%d", i), func(p *corev1.PodSpec) {
				p.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "shared"}}}}
			}))
		})
		jw.resumed.waitCount(b, "first runs started", total)
		// Finish the first runs so that the change starts new ones at once.
		inParallel(b, total, parallelism, func(i int) error {
			finishJob(b, ns, fmt.Sprintf("q%d-1", i), true)
			return nil
		})
		eventually(b, "first runs recorded", func() error {
			list := &qjv1.QuarksJobList{}
			if err := k8s.List(ctx, list); err != nil {
				return err
			}
			for _, q := range list.Items {
				if q.Namespace == ns && (q.Status.LastRun == nil || q.Status.LastRun.Result != qjv1.RunSucceeded) {
					return fmt.Errorf("%s not recorded yet", q.Name)
				}
			}
			return nil
		})

		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared"}}
		start := time.Now()
		change(b, cm, func() { cm.Data["k"] = "1" })
		jw.resumed.waitCount(b, "second runs started", 2*total)
		operator := jw.resumed.last().Sub(start)
		time.Sleep(3 * testDebounce)
		if n := jw.created.count(); n != 2*total {
			b.Fatalf("%d runs after the change; want exactly %d", n-total, total)
		}
		op.stop()

		floor := timeWrites(b, total, parallelism, func(ns string) func(i int) error {
			// One-offs whose first run is recorded, as the operator's are.
			qjobs := make([]*qjv1.QuarksJob, total)
			inParallel(b, total, parallelism, func(i int) error {
				if err := onceRunWrites(ns, i); err != nil {
					return err
				}
				qjobs[i] = &qjv1.QuarksJob{}
				return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("q%d", i)}, qjobs[i])
			})
			return func(i int) error {
				return startRunWrites(qjobs[i], runs.Run{Number: 2, By: qjv1.RunTriggerConfigChange})
			}
		})
		b.ReportMetric(operator.Seconds(), "operator-s")
		b.ReportMetric(floor.Seconds(), "floor-s")
		b.ReportMetric(operator.Seconds()/floor.Seconds(), "over-floor")
	}
}

// BenchmarkIdleMemoryWithSecrets runs the operator binary watching one
// namespace and reports its resident memory when idle with no Secrets, and
// with 10,000 Secrets of 8 KiB each (target: under 30 MiB more).
func BenchmarkIdleMemoryWithSecrets(b *testing.B) {
	const secrets, size = 10000, 8 << 10
	dir := b.TempDir()
	binary := filepath.Join(dir, "quarks-job")
	build := exec.Command("go", "build", "-o", binary, "code.cloudfoundry.org/quarks-job/controller/cmd/quarks-job")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatal(err)
	}
	user, err := testEnv.AddUser(envtest.User{Name: "bench", Groups: []string{"system:masters"}}, testConfig)
	if err != nil {
		b.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		b.Fatal(err)
	}

	for range b.N {
		ns := namespace(b)
		empty := idleRSS(b, binary, kubeconfigPath, ns)
		payload := strings.Repeat("x", size)
		inParallel(b, secrets, 8, func(i int) error {
			return k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("s%d", i)},
				StringData: map[string]string{"data": payload}})
		})
		full := idleRSS(b, binary, kubeconfigPath, ns)
		b.ReportMetric(float64(empty)/(1<<20), "idle-MiB")
		b.ReportMetric(float64(full)/(1<<20), "idle-10k-secrets-MiB")
		b.ReportMetric(float64(full-empty)/(1<<20), "delta-MiB")
	}
}

// idleRSS starts the operator, lets it sync and settle, and returns its RSS.
func idleRSS(b *testing.B, binary, kubeconfig, ns string) int64 {
	cmd := exec.Command(binary, "--kubeconfig", kubeconfig, "--watch-namespaces", ns,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--output-bind-address", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(10 * time.Second)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
