package quarksjob

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// The integration tests run the reconciler against a real kube-apiserver and
// etcd (envtest). There is no Job controller and no kubelet: the tests finish
// runs by writing the Job status themselves.
var (
	testEnv    *envtest.Environment
	testConfig *rest.Config
	testScheme *runtime.Scheme
	k8s        client.Client
	nsCounter  atomic.Int64
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	var err error
	if testScheme, err = testenv.Scheme(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEnv = testenv.Environment(testScheme)
	if testConfig, err = testenv.Start(testEnv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s, err = client.New(testConfig, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := testEnv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
	}
	os.Exit(code)
}

func zapLevel() int8 {
	if os.Getenv("TEST_VERBOSE") != "" {
		return -1
	}
	return 2 // errors of level 2 and above only: keep test output readable
}

// testDebounce is the config-change debounce window of the tests' operator.
const testDebounce = 300 * time.Millisecond

// operator is a running manager with the reconciler.
type operator struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	cache  cache.Cache
}

// waitSynced waits until the operator's caches have synced: it is ready to
// act on what happens from now on.
func (o *operator) waitSynced() {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !o.cache.WaitForCacheSync(ctx) {
		o.t.Fatal("the operator's caches did not sync within a minute")
	}
}

// startOperator starts a manager with the reconciler. wrap, if not nil,
// wraps the reconciler's client (to inject failures).
func startOperator(t testing.TB, wrap func(client.Client, context.CancelFunc) client.Client) *operator {
	t.Helper()
	return startOperatorWith(t, wrap, nil)
}

// startOperatorWith is startOperator with a hook to configure the reconciler.
func startOperatorWith(t testing.TB, wrap func(client.Client, context.CancelFunc) client.Client, configure func(*Reconciler)) *operator {
	t.Helper()
	return launchOperator(t, "", wrap, configure)
}

// startOperatorIn is startOperator watching one namespace only, as with
// --watch-namespaces: the benchmarks' figures must not include the work
// earlier benchmarks left in other namespaces.
func startOperatorIn(t testing.TB, namespace string, wrap func(client.Client, context.CancelFunc) client.Client) *operator {
	t.Helper()
	return launchOperator(t, namespace, wrap, nil)
}

// launchOperator starts the manager and the reconciler, watching every
// namespace or only namespace.
func launchOperator(t testing.TB, namespace string, wrap func(client.Client, context.CancelFunc) client.Client, configure func(*Reconciler)) *operator {
	t.Helper()
	var namespaces []string
	if namespace != "" {
		namespaces = []string{namespace}
	}
	options := ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             skipNameValidation(),
		Cache:                  CacheOptions(namespaces),
	}
	mgr, err := ctrl.NewManager(testConfig, options)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := mgr.GetClient()
	if wrap != nil {
		c = wrap(c, cancel)
	}
	r := &Reconciler{Client: c, APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("quarks-job"),
		ConfigChangeDebounce: testDebounce}
	if configure != nil {
		configure(r)
	}
	if err := r.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 16}); err != nil {
		t.Fatal(err)
	}
	op := &operator{t: t, cancel: cancel, done: make(chan error, 1), cache: mgr.GetCache()}
	go func() { op.done <- mgr.Start(ctx) }()
	t.Cleanup(op.stop)
	return op
}

// waitIdle waits until the operator's work queue is empty and no worker is
// busy, by its metrics: stopping it then cancels no write.
func (o *operator) waitIdle() {
	o.t.Helper()
	busy := func() (float64, error) {
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return 0, err
		}
		total := 0.0
		for _, f := range families {
			if f.GetName() != "workqueue_depth" && f.GetName() != "controller_runtime_active_workers" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if (l.GetName() == "name" || l.GetName() == "controller") && l.GetValue() == "quarksjob" {
						total += m.GetGauge().GetValue()
						break
					}
				}
			}
		}
		return total, nil
	}
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := busy()
		if err != nil {
			o.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("the operator is still busy after a minute: %v queued or in progress", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (o *operator) stop() {
	o.cancel()
	if err := <-o.done; err != nil {
		o.t.Errorf("operator stopped: %v", err)
	}
	o.done <- nil // stop is idempotent
}

// namespace creates a namespace for one test.
func namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test-%d-%d", time.Now().Unix()%100000, nsCounter.Add(1))
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func newQJob(ns, name string, strategy qjv1.Strategy) *qjv1.QuarksJob {
	return &qjv1.QuarksJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: qjv1.QuarksJobSpec{
			Trigger: qjv1.Trigger{Strategy: strategy},
			Template: qjv1.JobTemplate{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"carried": "yes"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"true"}}},
				}}},
			},
		},
	}
}
