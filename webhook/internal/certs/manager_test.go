package certs

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/webhook/internal/endpoints"
	"code.cloudfoundry.org/quarks-job/webhook/internal/inject"
	"code.cloudfoundry.org/quarks-job/webhook/internal/testenv"
)

// TestManagerAgainstTheAPIServer runs two replicas' managers against a real
// API server: they agree on one CA, the API server trusts the webhook they
// serve through the patched CA bundle, and a CA rotation by one replica is
// picked up by the other.
func TestManagerAgainstTheAPIServer(t *testing.T) {
	env := testenv.Environment()
	restConfig, err := testenv.Start(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := endpoints.Scheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	// The webhook server serves whatever certificate replica A holds.
	port := freePort(t)
	replicaA := newManager(k8s, "a")
	replicaB := newManager(k8s, "b")
	server := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = replicaA.GetCertificate }}})
	cfg := inject.DefaultConfig()
	cfg.Image, cfg.Endpoint = "persister:test", "https://quarks-job-output.quarks.svc/v1alpha1/output"
	endpoints.Register(server, scheme, cfg, replicaA.CABundle, nil)
	go func() { _ = server.Start(ctx) }()

	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "quarks"}},
		webhookConfiguration(port),
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "certs-test"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name:                    "nothing.quarks.cloudfoundry.org",
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(fmt.Sprintf("https://127.0.0.1:%d/validate", port))},
				ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matched"}},
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
			}}},
	} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	// Both replicas start at once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		m := replicaA
		if i%2 == 1 {
			m = replicaB
		}
		wg.Go(func() { errs <- m.Reconcile(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent reconcile: %v", err)
		}
	}
	webhookSecret := secret(t, k8s, "quarks-job-webhook-certs")
	if !bytes.Equal(replicaA.CABundle(), webhookSecret.Data[CACertKey]) || !bytes.Equal(replicaB.CABundle(), webhookSecret.Data[CACertKey]) {
		t.Fatal("the replicas hold different CA bundles")
	}
	outputSecret := secret(t, k8s, "quarks-job-output-tls")
	verify(t, outputSecret.Data, "quarks-job-output.quarks.svc", time.Now())
	if !bytes.Equal(outputSecret.Data[CACertKey], webhookSecret.Data[CACertKey]) {
		t.Error("the output Secret's CA bundle differs from the webhook's")
	}
	assertCABundlePatched(t, k8s, webhookSecret.Data[CACertKey])

	// The API server trusts the served certificate: the pod is injected.
	assertInjected(t, k8s)

	// Replica A finds the CA in the last third of its life and rotates it.
	// (Lifetimes are short here so that certificates issued by the shifted
	// clock are already valid, thanks to the backdating, for the API server.)
	replicaA.Now = func() time.Time { return time.Now().Add(shortValidity / 2) }
	if err := replicaA.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := secret(t, k8s, "quarks-job-webhook-certs")
	if bytes.Equal(rotated.Data[CAKeyKey], webhookSecret.Data[CAKeyKey]) {
		t.Fatal("the CA was not rotated")
	}
	if bundle, _ := parseCerts(rotated.Data[CACertKey]); len(bundle) != 2 {
		t.Errorf("the bundle holds %d CAs after rotation, want the new and the old", len(bundle))
	}
	assertCABundlePatched(t, k8s, rotated.Data[CACertKey])
	if out := secret(t, k8s, "quarks-job-output-tls"); !bytes.Equal(out.Data[CACertKey], rotated.Data[CACertKey]) {
		t.Error("the output Secret did not get the new bundle")
	}
	assertInjected(t, k8s)

	// Replica B, with its own clock, takes the rotated CA as it is.
	if err := replicaB.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if after := secret(t, k8s, "quarks-job-webhook-certs"); after.ResourceVersion != rotated.ResourceVersion {
		t.Error("replica B rewrote the Secret replica A had just rotated")
	}
	if !bytes.Equal(replicaB.CABundle(), rotated.Data[CACertKey]) {
		t.Error("replica B did not load the rotated bundle")
	}
}

// shortValidity makes the CA due for renewal within backdate.
const shortValidity = 6 * time.Minute

func newManager(k8s client.Client, replica string) *Manager {
	return &Manager{Client: k8s, Log: logr.Discard().WithName(replica), Config: Config{
		Namespace:                      "quarks",
		WebhookSecret:                  "quarks-job-webhook-certs",
		WebhookNames:                   []string{"127.0.0.1", "quarks-job-webhook.quarks.svc"},
		OutputSecret:                   "quarks-job-output-tls",
		OutputNames:                    []string{"quarks-job-output.quarks.svc"},
		MutatingWebhookConfiguration:   "certs-test",
		ValidatingWebhookConfiguration: "certs-test",
		CAValidity:                     shortValidity,
		CertValidity:                   shortValidity,
		CheckInterval:                  time.Minute,
	}}
}

func webhookConfiguration(port int) *admissionregistrationv1.MutatingWebhookConfiguration {
	cfg := endpoints.MutatingWebhookConfiguration("certs-test", endpoints.Service{}, endpoints.DefaultPodTimeoutSeconds)
	cfg.Webhooks = cfg.Webhooks[:1]
	cfg.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To(fmt.Sprintf("https://127.0.0.1:%d%s", port, endpoints.PodPath))}
	return cfg
}

func assertCABundlePatched(t *testing.T, k8s client.Client, want []byte) {
	t.Helper()
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Name: "certs-test"}, mutating); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(t.Context(), client.ObjectKey{Name: "certs-test"}, validating); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mutating.Webhooks[0].ClientConfig.CABundle, want) || !bytes.Equal(validating.Webhooks[0].ClientConfig.CABundle, want) {
		t.Error("the CA bundle was not patched into the webhook configurations")
	}
}

func assertInjected(t *testing.T, k8s client.Client) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-", Namespace: "quarks",
		Labels:      map[string]string{qjv1.LabelQJobName: "gen"},
		Annotations: map[string]string{qjv1.AnnotationOutputFiles: `{"gen":["a.json"]}`}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: "default", Containers: []corev1.Container{{Name: "gen", Image: "busybox"}}}}
	// The server may not have taken the first certificate yet.
	var err error
	attempts := 0
	for range 50 {
		attempts++
		if err = k8s.Create(t.Context(), pod); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("creating a QuarksJob pod through the webhook: %v", err)
	}
	t.Logf("pod created after %d attempts", attempts)
	if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != upload.PersisterContainerName {
		t.Fatalf("pod not injected: %+v", pod.Spec.InitContainers)
	}
}

func secret(t *testing.T, k8s client.Client, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: "quarks", Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}
