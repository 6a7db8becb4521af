package outputendpoint

// Integration tests against a real kube-apiserver (envtest). There is no
// kubelet: the tests create Pod objects and set their container statuses
// themselves, and request pod-bound tokens with TokenRequest.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/controller/quarksjob"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint/uploadtest"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// testExitCodeTimeout is the endpoint's wait for exit codes in these tests.
const testExitCodeTimeout = 3 * time.Second

var (
	testEnv   *envtest.Environment
	k8s       client.Client
	clientset *kubernetes.Clientset
	uploader  uploadtest.Client
	saKeyPath string
	// restConfig is the control plane's, for handlers a test builds.
	restConfig *rest.Config
)

func TestMain(m *testing.M) {
	code, err := runSuite(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "output endpoint integration tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runSuite(m *testing.M) (int, error) {
	// The endpoint's logs are not read here; set, so controller-runtime does
	// not print a warning with a stack trace instead.
	ctrl.SetLogger(logr.Discard())
	scheme, err := testenv.Scheme()
	if err != nil {
		return 0, err
	}
	testEnv = testenv.Environment(scheme)
	cfg, err := testenv.Start(testEnv)
	if err != nil {
		return 0, err
	}
	defer func() { _ = testEnv.Stop() }()
	saKeyPath = filepath.Join(testEnv.ControlPlane.APIServer.CertDir, "sa-signer.key")
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 2000
	restConfig = cfg

	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return 0, err
	}

	certDir, err := os.MkdirTemp("", "output-endpoint-certs")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(certDir) }()
	https, err := uploadtest.WriteServingCert(certDir)
	if err != nil {
		return 0, err
	}

	addr, err := freeAddress()
	if err != nil {
		return 0, err
	}
	uploader = uploadtest.Client{URL: "https://" + addr + upload.Path, HTTP: https}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: quarksjob.CacheOptions(nil)})
	if err != nil {
		return 0, err
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testHoldNamespace}}); err != nil {
		return 0, err
	}
	if err := Add(mgr, Options{BindAddress: addr, CertDir: certDir, ExitCodeTimeout: testExitCodeTimeout, PersisterImage: testPersisterImage,
		HoldNamespace: testHoldNamespace, HoldInterval: 200 * time.Millisecond}); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	if err := waitForEndpoint(addr); err != nil {
		return 0, err
	}

	code := m.Run()
	cancel()
	if err := <-stopped; err != nil {
		return code, fmt.Errorf("manager: %w", err)
	}
	return code, nil
}

// testHoldNamespace is the controller's namespace, where uploads wait for
// their exit codes.
const testHoldNamespace = "quarks-job-system"

// testPersisterImage is the persister image the test endpoint accepts.
const testPersisterImage = "persister"

func waitForEndpoint(addr string) error {
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return false, nil //nolint:nilerr // not listening yet: poll again
		}
		return true, conn.Close()
	})
	if err != nil {
		return fmt.Errorf("the endpoint did not listen on %s: %w", addr, err)
	}
	return nil
}

func freeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// newNamespace creates a namespace with the service account the test pods run as.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "output-"}}
	must(t, k8s.Create(context.Background(), ns))
	must(t, k8s.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: uploadtest.ServiceAccount, Namespace: ns.Name}}))
	return ns.Name
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
