package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/viper"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/version"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

func TestWatchNamespaces(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  string
		want []string
	}{
		{"flag with a comma", []string{"--watch-namespaces", "a,b"}, "", []string{"a", "b"}},
		{"flag with a comma and a space", []string{"--watch-namespaces", "a, b"}, "", []string{"a", "b"}},
		{"flag twice", []string{"--watch-namespaces", "a", "--watch-namespaces", "b"}, "", []string{"a", "b"}},
		{"environment variable with a comma", nil, "a,b", []string{"a", "b"}},
		{"environment variable with spaces", nil, " a  b ", []string{"a", "b"}},
		{"none", nil, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("QUARKS_JOB_WATCH_NAMESPACES", c.env) // restored after the test
			if c.env == "" {
				if err := os.Unsetenv("QUARKS_JOB_WATCH_NAMESPACES"); err != nil {
					t.Fatal(err)
				}
			}
			v := viper.New()
			cmd := command(v)
			if err := cmd.ParseFlags(c.args); err != nil {
				t.Fatal(err)
			}
			if got := watchNamespaces(v); !slices.Equal(got, c.want) {
				t.Errorf("watchNamespaces = %q, want %q", got, c.want)
			}
		})
	}
}

// TestWatchedNamespacesAndMetrics runs the operator binary against a test API
// server with QUARKS_JOB_WATCH_NAMESPACES=a,b: QuarksJobs in a and b run, one
// in c does not, and the metrics endpoint serves the run metrics that
// docs/guide.md lists.
func TestWatchedNamespacesAndMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the operator and starts a test API server")
	}
	cp := startControlPlane(t, nil)
	k8s, kubeconfigPath := cp.client, cp.kubeconfig
	binary := buildOperator(t)

	ctx := t.Context()
	namespaces := map[string]string{}
	for _, n := range []string{"a", "b", "c"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "watch-" + n + "-"}}
		if err := k8s.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		namespaces[n] = ns.Name
	}
	metricsAddr := freeAddress(t)
	operator := exec.Command(binary, "--kubeconfig", kubeconfigPath, "--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", "0", "--output-bind-address", "127.0.0.1:0")
	operator.Env = append(os.Environ(), "QUARKS_JOB_WATCH_NAMESPACES="+namespaces["a"]+","+namespaces["b"])
	logs := &testenv.Buffer{}
	operator.Stderr = io.MultiWriter(os.Stderr, logs)
	if err := operator.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = operator.Process.Kill(); _ = operator.Wait() })

	for _, n := range []string{"a", "b", "c"} {
		if err := k8s.Create(ctx, oneOff(namespaces[n], "job")); err != nil {
			t.Fatal(err)
		}
	}
	// A QuarksJob of a watched namespace that admission would refuse: its run fails at once.
	invalid := oneOff(namespaces["a"], "invalid")
	invalid.Spec.Output = &qjv1.Output{OutputMap: qjv1.OutputMap{"ghost": {"out.json": {Name: "out"}}}}
	if err := k8s.Create(ctx, invalid); err != nil {
		t.Fatal(err)
	}

	for _, n := range []string{"a", "b"} {
		poll(t, "the run's Job in namespace "+n, func() (bool, string) {
			jobs := &batchv1.JobList{}
			if err := k8s.List(ctx, jobs, client.InNamespace(namespaces[n])); err != nil {
				return false, err.Error()
			}
			return len(jobs.Items) == 1, fmt.Sprintf("%d Jobs", len(jobs.Items))
		})
	}
	poll(t, "the invalid QuarksJob's run to fail", func() (bool, string) {
		q := &qjv1.QuarksJob{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(invalid), q); err != nil {
			return false, err.Error()
		}
		return q.Status.LastRun != nil && q.Status.LastRun.Result == qjv1.RunFailed, fmt.Sprintf("last run %+v", q.Status.LastRun)
	})
	// c was created before a's invalid QuarksJob, which the operator has handled: had it watched
	// c, its QuarksJob would have a run by now.
	jobs := &batchv1.JobList{}
	if err := k8s.List(ctx, jobs, client.InNamespace(namespaces["c"])); err != nil || len(jobs.Items) != 0 {
		t.Errorf("Jobs in the unwatched namespace: %d (%v)", len(jobs.Items), err)
	}
	q := &qjv1.QuarksJob{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespaces["c"], Name: "job"}, q); err != nil || q.Status.LastRun != nil || q.Status.RunCount != 0 {
		t.Errorf("the QuarksJob of the unwatched namespace was handled: %+v (%v)", q.Status, err)
	}

	var metrics string
	poll(t, "the run metrics", func() (bool, string) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err.Error()
		}
		metrics = string(body)
		return strings.Contains(metrics, `quarks_job_runs_finished_total{result="Failed",trigger="Once"} 1`), "no finished run counted yet"
	})
	for _, want := range []string{
		`quarks_job_runs_started_total{trigger="Once"} 2`,
		`quarks_job_trigger_to_job_created_seconds_count{trigger="Once"} 2`,
		`controller_runtime_reconcile_total{controller="quarksjob",result="success"}`,
		`quarks_job_build_info{component="controller",goversion="` + goruntime.Version() + `",revision="0123456789abcdef",version="v0.0.0-test"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if want := `"msg":"starting quarks-job","version":"v0.0.0-test","revision":"0123456789abcdef"`; !strings.Contains(logs.String(), want) {
		t.Errorf("the operator's log lacks %s", want)
	}
	guide, err := os.ReadFile("../../../docs/guide.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"quarks_job_runs_started_total", "quarks_job_runs_finished_total", "quarks_job_trigger_to_job_created_seconds", version.MetricName} {
		if !strings.Contains(string(guide), "`"+name+"{") {
			t.Errorf("docs/guide.md does not list the metric %s", name)
		}
	}
}

func oneOff(ns, name string) *qjv1.QuarksJob {
	return &qjv1.QuarksJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: qjv1.QuarksJobSpec{
			Trigger: qjv1.Trigger{Strategy: qjv1.StrategyOnce},
			Template: qjv1.JobTemplate{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
			}}}},
		},
	}
}

func poll(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		ok, why := check()
		last = why
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: %v (%s)", what, err, last)
	}
}

func freeAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func clientScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := qjv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

func TestVersion(t *testing.T) {
	cmd := command(viper.New())
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if want := "quarks-job " + version.Get().String() + "\n"; out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}

// controlPlane is a test API server with the QuarksJob CRD, a client of it,
// and a kubeconfig for the operator's own user, "operator" (in the
// system:masters group).
type controlPlane struct {
	env        *envtest.Environment
	client     client.Client
	clientset  *kubernetes.Clientset
	kubeconfig string
}

// operatorUser is the user the operator binary runs as in these tests.
const operatorUser = "operator"

// startControlPlane starts a test API server; configure, when not nil,
// changes its environment before it starts (API server flags, say).
func startControlPlane(tb testing.TB, configure func(*envtest.Environment)) *controlPlane {
	tb.Helper()
	// The operator runs as its own process; envtest's own log lines are not
	// wanted, and without a logger controller-runtime prints a warning with a
	// stack trace.
	ctrllog.SetLogger(logr.Discard())
	env := testenv.Environment(nil)
	if configure != nil {
		configure(env)
	}
	cfg, err := testenv.Start(env)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = env.Stop() })
	cp := &controlPlane{env: env}
	if cp.client, err = client.New(cfg, client.Options{Scheme: clientScheme(tb)}); err != nil {
		tb.Fatal(err)
	}
	if cp.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		tb.Fatal(err)
	}
	user, err := env.AddUser(envtest.User{Name: operatorUser, Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		tb.Fatal(err)
	}
	cp.kubeconfig = filepath.Join(tb.TempDir(), "kubeconfig")
	if err := os.WriteFile(cp.kubeconfig, kubeconfig, 0o600); err != nil {
		tb.Fatal(err)
	}
	return cp
}

// buildOperator builds the operator binary and returns its path.
func buildOperator(tb testing.TB) string {
	tb.Helper()
	binary := filepath.Join(tb.TempDir(), "quarks-job")
	// Linked as a release build is, so the version reaches the log and the metrics.
	build := exec.Command("go", "build", "-ldflags", version.LDFlags("v0.0.0-test", "0123456789abcdef"), "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		tb.Fatal(err)
	}
	return binary
}
