package catalog

// The product under test, started once for every case: a kube-apiserver
// and etcd (envtest) with the chart's CRD and webhook configurations, the
// webhook binary serving them, and the controller's reconciler and output
// endpoint in this process. The persister binary runs once per run pod.
// There is no Job controller and no kubelet: the tests create a run's pod
// and report its containers' exits as those would.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/controller/quarksjob"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// repo is the repository's root.
var repo = testenv.Root()

// persisterImage is the image the webhook injects and the endpoint accepts.
const persisterImage = "registry.example/quarks-job-persister:catalog"

var (
	restConfig   *rest.Config
	scheme       *runtime.Scheme
	k8s          client.Client
	clientset    *kubernetes.Clientset
	persisterBin string
	hook         *webhookProcess
	// managerErr receives the manager's end; a crash of the reconciler or
	// the endpoint ends the test binary (panics are not recovered).
	managerDone = make(chan error, 1)
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(2))))
	work, err := os.MkdirTemp("", "catalog-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(work) }()
	stop, err := start(work)
	if err != nil {
		fmt.Fprintln(os.Stderr, "catalog: starting the product:", err)
		stop()
		return 1
	}
	code := m.Run()
	stop()
	return code
}

// start builds the binaries and starts the product; stop undoes what start
// did, also after an error.
func start(work string) (stop func(), err error) {
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if scheme, err = testenv.Scheme(); err != nil {
		return stop, err
	}

	// The binaries build while the control plane starts.
	webhookBin := filepath.Join(work, "webhook")
	persisterBin = filepath.Join(work, "persister")
	built := make(chan error, 1)
	go func() {
		built <- errors.Join(
			goBuild(filepath.Join(repo, "webhook"), "./cmd/webhook", webhookBin),
			goBuild(filepath.Join(repo, "persister"), "./cmd/persister", persisterBin))
	}()

	mutating, validating, err := chartWebhooks(filepath.Join(repo, "charts", "quarks-job", "files", "webhook", "configurations.yaml"))
	if err != nil {
		return stop, err
	}
	env := testenv.Environment(scheme)
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{MutatingWebhooks: mutating, ValidatingWebhooks: validating}
	cfg, err := testenv.Start(env)
	if err != nil {
		return stop, err
	}
	undo = append(undo, func() { _ = env.Stop() })
	restConfig = rest.CopyConfig(cfg)
	restConfig.QPS, restConfig.Burst = 500, 1000
	if k8s, err = client.New(restConfig, client.Options{Scheme: scheme}); err != nil {
		return stop, err
	}
	if clientset, err = kubernetes.NewForConfig(restConfig); err != nil {
		return stop, err
	}

	// The output endpoint's certificate, which the webhook hands to the
	// persister as the CA bundle.
	endpointCerts := filepath.Join(work, "endpoint-certs")
	endpointCA, err := writeServingCert(endpointCerts)
	if err != nil {
		return stop, err
	}
	// Not the port envtest chose for the webhook: both were free a moment ago.
	endpointAddr, err := freeAddress(env.WebhookInstallOptions.LocalServingPort)
	if err != nil {
		return stop, err
	}

	// The controller, as cmd/quarks-job wires it.
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  quarksjob.CacheOptions(nil),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return stop, err
	}
	reconciler := &quarksjob.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("quarks-job")}
	// A panic is not recovered: it ends the test binary, as it would end
	// the controller.
	if err := reconciler.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 4, RecoverPanic: ptr.To(false)}); err != nil {
		return stop, err
	}
	err = outputendpoint.Add(mgr, outputendpoint.Options{
		BindAddress: endpointAddr, CertDir: endpointCerts, ExitCodeTimeout: 5 * time.Second,
		PersisterImage: persisterImage, Watches: reconciler.Watches,
	})
	if err != nil {
		return stop, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { managerDone <- mgr.Start(ctx) }()
	undo = append(undo, func() { cancel(); <-managerDone }) //nolint:errcheck // after cancel the manager only reports its shutdown
	if err := waitForListener(endpointAddr, endpointCA, nil); err != nil {
		return stop, fmt.Errorf("the output endpoint: %w", err)
	}

	if err := <-built; err != nil {
		return stop, err
	}
	hook, err = startWebhook(env, webhookBin, work, endpointCA, "https://"+endpointAddr+upload.Path)
	if err != nil {
		return stop, err
	}
	undo = append(undo, func() { _ = hook.stop() })
	return stop, nil
}

// goBuild builds the main package pkg of the module in dir: the binary as
// shipped, from its own module.
func goBuild(dir, pkg, out string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command builds the binaries under test: %w", err)
	}
	cmd := exec.Command(goCmd, "build", "-o", out, pkg)
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, output.Bytes())
	}
	return nil
}

// chartWebhooks reads the webhook configurations the chart installs, named
// as the chart names them by default.
func chartWebhooks(path string) ([]*admissionregistrationv1.MutatingWebhookConfiguration, []*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = f.Close() }()
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&list); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var mutating []*admissionregistrationv1.MutatingWebhookConfiguration
	var validating []*admissionregistrationv1.ValidatingWebhookConfiguration
	for _, item := range list.Items {
		var kind struct{ Kind string }
		if err := json.Unmarshal(item, &kind); err != nil {
			return nil, nil, err
		}
		switch kind.Kind {
		case "MutatingWebhookConfiguration":
			c := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := json.Unmarshal(item, c); err != nil {
				return nil, nil, err
			}
			c.Name = "quarks-job-webhook"
			mutating = append(mutating, c)
		case "ValidatingWebhookConfiguration":
			c := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := json.Unmarshal(item, c); err != nil {
				return nil, nil, err
			}
			c.Name = "quarks-job-webhook"
			validating = append(validating, c)
		}
	}
	if len(mutating) != 1 || len(validating) != 1 {
		return nil, nil, fmt.Errorf("%s: want one mutating and one validating configuration, found %d and %d", path, len(mutating), len(validating))
	}
	return mutating, validating, nil
}

// webhookProcess is the webhook binary, serving the configurations envtest
// installed, with certificates given to it as cert-manager would.
type webhookProcess struct {
	cmd    *exec.Cmd
	log    *testenv.Buffer
	exited chan struct{}
}

func startWebhook(env *envtest.Environment, bin, work string, endpointCA []byte, endpointURL string) (*webhookProcess, error) {
	user, err := env.AddUser(envtest.User{Name: "quarks-job-webhook", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	kubeconfigPath := filepath.Join(work, "webhook.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	opts := env.WebhookInstallOptions
	certDir := filepath.Join(work, "webhook-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		content, err := os.ReadFile(filepath.Join(opts.LocalServingCertDir, name))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(certDir, name), content, 0o600); err != nil {
			return nil, err
		}
	}
	// ca.crt is what the persister trusts: here the output endpoint's own.
	if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), endpointCA, 0o600); err != nil {
		return nil, err
	}

	cmd := exec.Command(bin,
		"--manage-certificates=false", "--cert-dir", certDir, "--port", strconv.Itoa(opts.LocalServingPort),
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--persister-image", persisterImage, "--output-endpoint-url", endpointURL)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	p := &webhookProcess{cmd: cmd, log: &testenv.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if err := waitForListener(net.JoinHostPort(opts.LocalServingHost, strconv.Itoa(opts.LocalServingPort)), opts.LocalServingCAData, p.exited); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("the webhook: %w\n%s", err, p.log.String())
	}
	return p, nil
}

// running reports whether the webhook is still up: a crash shows here.
func (p *webhookProcess) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop ends the webhook as the kubelet would: SIGTERM, then SIGKILL.
func (p *webhookProcess) stop() error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("the webhook did not stop within 30s of SIGTERM")
	}
}

// waitForListener waits until a TLS server answers on addr, or exited is
// closed.
// waitForListener waits until the server at addr answers with a certificate
// that ca signs: that server, not another process that took the port.
func waitForListener(addr string, ca []byte, exited <-chan struct{}) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return errors.New("no CA certificate to check the server with")
	}
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		select {
		case <-exited:
			return false, errors.New("exited")
		default:
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			last = err
			return false, nil //nolint:nilerr // not serving yet, or another server has the port: the last error says which
		}
		return true, conn.Close()
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last attempt: %w)", err, last)
	}
	return err
}

// freeAddress returns a loopback address whose port was free, other than the
// ports in taken.
func freeAddress(taken ...int) (string, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return "", err
		}
		if !slices.Contains(taken, port) {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
		}
	}
}

// writeServingCert writes a self-signed tls.crt/tls.key for 127.0.0.1 into
// dir and returns the certificate, which is its own CA.
func writeServingCert(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "quarks-job output endpoint (catalog)"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	return certPEM, os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}
