package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Config names what the Manager keeps.
type Config struct {
	// Namespace of both Secrets.
	Namespace string
	// WebhookSecret holds the CA (ca.crt: the bundle, current CA first;
	// ca.key) and the webhook's serving certificate (tls.crt, tls.key).
	WebhookSecret string
	// WebhookNames are the DNS names (or IP addresses) of the webhook's
	// serving certificate.
	WebhookNames []string
	// OutputSecret holds the controller's output-endpoint certificate
	// (tls.crt, tls.key) and the CA bundle (ca.crt). Empty: none is issued.
	OutputSecret string
	// OutputNames are the DNS names (or IP addresses) of the output endpoint.
	OutputNames []string
	// MutatingWebhookConfiguration and ValidatingWebhookConfiguration get the
	// CA bundle in every webhook's clientConfig. Empty: not patched.
	MutatingWebhookConfiguration   string
	ValidatingWebhookConfiguration string
	// CAValidity and CertValidity are the lifetimes of new certificates; each
	// is renewed in the last third of its lifetime.
	CAValidity   time.Duration
	CertValidity time.Duration
	// CheckInterval is how often the Secrets and configurations are checked.
	CheckInterval time.Duration
}

// Manager keeps the certificates. It runs in every replica (no leader
// election): each replica serves the certificate it last read.
type Manager struct {
	Client client.Client
	Config Config
	Log    logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	serving  atomic.Pointer[tls.Certificate]
	caBundle atomic.Pointer[[]byte]
}

var (
	_ manager.Runnable               = &Manager{}
	_ manager.LeaderElectionRunnable = &Manager{}
)

var certificateExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "quarks_job_webhook_certificate_expiry_timestamp_seconds",
	Help: "When the certificate kept in a Secret expires (Unix time).",
}, []string{"secret", "certificate"})

func init() { metrics.Registry.MustRegister(certificateExpiry) }

// NeedLeaderElection is false: every replica needs the serving certificate.
func (m *Manager) NeedLeaderElection() bool { return false }

// Start checks the certificates now and every CheckInterval until ctx ends;
// after a failure it retries sooner.
func (m *Manager) Start(ctx context.Context) error {
	const retryAfter = 5 * time.Second
	for {
		wait := m.Config.CheckInterval
		if err := m.Reconcile(ctx); err != nil {
			m.Log.Error(err, "checking certificates failed; retrying", "after", retryAfter)
			wait = retryAfter
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// GetCertificate serves the webhook's current certificate (tls.Config).
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := m.serving.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no serving certificate yet")
}

// CABundle is the PEM CA bundle, nil before the first successful check.
func (m *Manager) CABundle() []byte {
	if b := m.caBundle.Load(); b != nil {
		return *b
	}
	return nil
}

// ReadyCheck fails until a serving certificate is loaded (healthz.Checker).
func (m *Manager) ReadyCheck(*http.Request) error {
	if m.serving.Load() == nil {
		return errors.New("no serving certificate yet")
	}
	return nil
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Reconcile makes the Secrets hold valid certificates, patches the CA bundle
// into the webhook configurations and loads the serving certificate. A
// conflict with another replica means reading again.
func (m *Manager) Reconcile(ctx context.Context) error {
	return retry.OnError(retry.DefaultBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error { return m.reconcile(ctx) })
}

func (m *Manager) reconcile(ctx context.Context) error {
	now := m.now()
	webhookSecret, err := m.ensureSecret(ctx, m.Config.WebhookSecret, func(data map[string][]byte) (map[string][]byte, string, error) {
		return planWebhookSecret(data, m.Config.WebhookNames, m.Config.CAValidity, m.Config.CertValidity, now)
	})
	if err != nil {
		return err
	}
	data := webhookSecret.Data
	ca, err := parseAuthority(data[CACertKey], data[CAKeyKey])
	if err != nil {
		return fmt.Errorf("secret %s/%s: %w", m.Config.Namespace, m.Config.WebhookSecret, err)
	}
	caBundle := data[CACertKey]

	if m.Config.OutputSecret != "" {
		if _, err := m.ensureSecret(ctx, m.Config.OutputSecret, func(data map[string][]byte) (map[string][]byte, string, error) {
			return planServingSecret(data, ca, caBundle, m.Config.OutputNames, m.Config.CertValidity, now)
		}); err != nil {
			return err
		}
	}
	if err := m.patchWebhookConfigurations(ctx, caBundle); err != nil {
		return err
	}

	serving, err := tls.X509KeyPair(data[TLSCertKey], data[TLSKeyKey])
	if err != nil {
		return fmt.Errorf("secret %s/%s: %w", m.Config.Namespace, m.Config.WebhookSecret, err)
	}
	m.serving.Store(&serving)
	m.caBundle.Store(&caBundle)
	return nil
}

// ensureSecret reads the Secret, lets plan say what it should hold, and
// creates or updates it. Another replica's write shows as AlreadyExists or
// Conflict, which Reconcile retries.
func (m *Manager) ensureSecret(ctx context.Context, name string, plan func(map[string][]byte) (map[string][]byte, string, error)) (*corev1.Secret, error) {
	log := m.Log.WithValues("secret", m.Config.Namespace+"/"+name)
	secret := &corev1.Secret{}
	err := m.Client.Get(ctx, client.ObjectKey{Namespace: m.Config.Namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		want, _, err := plan(nil)
		if err != nil {
			return nil, err
		}
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: m.Config.Namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "quarks-job-webhook"}},
			Type:       corev1.SecretTypeTLS,
			Data:       want,
		}
		if err := m.Client.Create(ctx, secret); err != nil {
			return nil, fmt.Errorf("creating secret %s/%s: %w", m.Config.Namespace, name, err)
		}
		log.Info("created certificates")
		m.recordExpiry(name, want)
		return secret, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret %s/%s: %w", m.Config.Namespace, name, err)
	}
	want, reason, err := plan(secret.Data)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		secret.Data = want
		if err := m.Client.Update(ctx, secret); err != nil {
			return nil, fmt.Errorf("updating secret %s/%s: %w", m.Config.Namespace, name, err)
		}
		log.Info("renewed certificates", "reason", reason)
	}
	m.recordExpiry(name, secret.Data)
	return secret, nil
}

func (m *Manager) recordExpiry(secret string, data map[string][]byte) {
	for _, key := range []string{CACertKey, TLSCertKey} {
		if certs, err := parseCerts(data[key]); err == nil {
			certificateExpiry.WithLabelValues(secret, key).Set(float64(certs[0].NotAfter.Unix()))
		}
	}
}

func (m *Manager) patchWebhookConfigurations(ctx context.Context, caBundle []byte) error {
	if name := m.Config.MutatingWebhookConfiguration; name != "" {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := m.patchCABundle(ctx, name, cfg, func() []*admissionregistrationv1.WebhookClientConfig {
			out := make([]*admissionregistrationv1.WebhookClientConfig, len(cfg.Webhooks))
			for i := range cfg.Webhooks {
				out[i] = &cfg.Webhooks[i].ClientConfig
			}
			return out
		}, caBundle); err != nil {
			return err
		}
	}
	if name := m.Config.ValidatingWebhookConfiguration; name != "" {
		cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := m.patchCABundle(ctx, name, cfg, func() []*admissionregistrationv1.WebhookClientConfig {
			out := make([]*admissionregistrationv1.WebhookClientConfig, len(cfg.Webhooks))
			for i := range cfg.Webhooks {
				out[i] = &cfg.Webhooks[i].ClientConfig
			}
			return out
		}, caBundle); err != nil {
			return err
		}
	}
	return nil
}

// patchCABundle sets caBundle in every webhook of the named configuration. A
// missing configuration is logged, not an error: nothing calls the webhook
// through it.
func (m *Manager) patchCABundle(ctx context.Context, name string, obj client.Object, clientConfigs func() []*admissionregistrationv1.WebhookClientConfig, caBundle []byte) error {
	kind := fmt.Sprintf("%T", obj)
	if err := m.Client.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			m.Log.Info("webhook configuration not found; CA bundle not patched", "kind", kind, "name", name)
			return nil
		}
		return fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	changed := false
	for _, cc := range clientConfigs() {
		if !bytes.Equal(cc.CABundle, caBundle) {
			cc.CABundle = bytes.Clone(caBundle)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := m.Client.Update(ctx, obj); err != nil {
		return fmt.Errorf("patching the CA bundle into %s %s: %w", kind, name, err)
	}
	m.Log.Info("patched CA bundle", "kind", kind, "name", name)
	return nil
}

// planWebhookSecret returns what the webhook Secret should hold and why it
// differs from data ("" when it does not).
func planWebhookSecret(data map[string][]byte, names []string, caValidity, certValidity time.Duration, now time.Time) (map[string][]byte, string, error) {
	var reasons []string
	ca, err := parseAuthority(data[CACertKey], data[CAKeyKey])
	switch {
	case err != nil:
		reasons = append(reasons, fmt.Sprintf("CA: %v", err))
	case renewalDue(ca.cert, now):
		reasons = append(reasons, fmt.Sprintf("CA expires %s", ca.cert.NotAfter.Format(time.RFC3339)))
	}
	if len(reasons) > 0 {
		if ca, err = newAuthority(now, caValidity); err != nil {
			return nil, "", err
		}
	}
	// The previous CAs stay in the bundle until they expire, so certificates
	// they signed stay trusted while they are replaced.
	caBundle := bundle(ca.certPEM, now, data[CACertKey])
	want, reason, err := planServingSecret(data, ca, caBundle, names, certValidity, now)
	if err != nil {
		return nil, "", err
	}
	want[CAKeyKey] = ca.keyPEM
	if reason != "" {
		reasons = append(reasons, reason)
	}
	if len(reasons) == 0 && !maps.EqualFunc(want, data, bytes.Equal) {
		reasons = append(reasons, "CA bundle changed")
	}
	return want, joinReasons(reasons), nil
}

// planServingSecret returns what a Secret holding a serving certificate
// signed by ca should hold, and why it differs from data ("" when it does
// not).
func planServingSecret(data map[string][]byte, ca *authority, caBundle []byte, names []string, validity time.Duration, now time.Time) (map[string][]byte, string, error) {
	want := map[string][]byte{CACertKey: caBundle, TLSCertKey: data[TLSCertKey], TLSKeyKey: data[TLSKeyKey]}
	var reasons []string
	if problem := servingCertProblem(data[TLSCertKey], data[TLSKeyKey], caBundle, names, now); problem != "" {
		certPEM, keyPEM, err := ca.issue(now, validity, names)
		if err != nil {
			return nil, "", err
		}
		want[TLSCertKey], want[TLSKeyKey] = certPEM, keyPEM
		reasons = append(reasons, "serving certificate: "+problem)
	}
	if !bytes.Equal(data[CACertKey], caBundle) {
		reasons = append(reasons, "CA bundle changed")
	}
	return want, joinReasons(reasons), nil
}

func joinReasons(reasons []string) string {
	out := ""
	for i, r := range reasons {
		if i > 0 {
			out += "; "
		}
		out += r
	}
	return out
}
