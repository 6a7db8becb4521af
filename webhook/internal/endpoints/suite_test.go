package endpoints_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/webhook/internal/endpoints"
	"code.cloudfoundry.org/quarks-job/webhook/internal/inject"
	"code.cloudfoundry.org/quarks-job/webhook/internal/testenv"
)

// The suite's API server calls the webhook server of this process through
// the configurations the chart installs (envtest rewrites their service
// references to the local server).
var (
	restConfig *rest.Config
	k8s        client.Client
	scheme     *runtime.Scheme
	injectCfg  inject.Config
	// calls counts admission requests per path.
	calls sync.Map // path → *atomic.Int64
	// handlerLatency records how long the pod handler took, for the benchmark.
	handlerLatency = &latencies{}
)

var testCABundle = []byte("-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n")

const (
	mutatingName   = "quarks-job-webhook"
	validatingName = "quarks-job-webhook"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	svc := endpoints.Service{Namespace: "quarks", Name: "quarks-job-webhook", Port: 443}
	env := testenv.Environment()
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{endpoints.MutatingWebhookConfiguration(mutatingName, svc, endpoints.DefaultPodTimeoutSeconds)},
		ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{endpoints.ValidatingWebhookConfiguration(validatingName, svc)},
	}
	var err error
	restConfig, err = testenv.Start(env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()

	scheme = endpoints.Scheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	k8s, err = client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		panic(err)
	}

	opts := env.WebhookInstallOptions
	server := webhook.NewServer(webhook.Options{Host: opts.LocalServingHost, Port: opts.LocalServingPort, CertDir: opts.LocalServingCertDir})
	injectCfg = inject.DefaultConfig()
	injectCfg.Image = "registry.example/quarks-job-persister:test"
	injectCfg.Endpoint = "https://quarks-job-output.quarks.svc:8443/v1alpha1/output"
	endpoints.Register(server, scheme, injectCfg, func() []byte { return testCABundle }, countCalls)

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	defer func() { cancel(); <-stopped }()
	go func() {
		defer close(stopped)
		if err := server.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "webhook server:", err)
		}
	}()
	if err := waitForTLS(net.JoinHostPort(opts.LocalServingHost, strconv.Itoa(opts.LocalServingPort))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func zapLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return zapcore.Level(-2)
	}
	return zapcore.ErrorLevel
}

func countCalls(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		counter, _ := calls.LoadOrStore(r.URL.Path, &atomic.Int64{})
		counter.(*atomic.Int64).Add(1)
		start := time.Now()
		h.ServeHTTP(w, r)
		if r.URL.Path == endpoints.PodPath {
			handlerLatency.add(time.Since(start))
		}
	})
}

func callCount(path string) int64 {
	counter, _ := calls.LoadOrStore(path, &atomic.Int64{})
	return counter.(*atomic.Int64).Load()
}

func waitForTLS(address string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.Dial("tcp", address, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only waits for the server to listen
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server at %s not up: %w", address, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// namespace creates a namespace for one test, with labels.
func namespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-test-", Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// jobPod is a pod as the Job controller creates it for a run.
func jobPod(namespace, outputFiles string, containers ...string) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "gen-run-1-", Namespace: namespace,
		Labels: map[string]string{qjv1.LabelQJobName: "gen", qjv1.LabelRun: "1"},
	}}
	if outputFiles != "" {
		pod.Annotations = map[string]string{qjv1.AnnotationOutputFiles: outputFiles}
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	// What the ServiceAccount admission plugin sets in a cluster; envtest
	// turns that plugin off, and a projected token needs it.
	pod.Spec.ServiceAccountName = "default"
	return pod
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) reset() {
	l.mu.Lock()
	l.d = nil
	l.mu.Unlock()
}

func (l *latencies) snapshot() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.d...)
}
