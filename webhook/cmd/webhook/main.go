// Command webhook is the QuarksJob admission webhook: it injects the output
// persister into QuarksJob pods, validates and defaults QuarksJobs, and keeps
// its own certificates (or serves those cert-manager mounts).
//
// Every flag is also read from the environment variable QUARKS_WEBHOOK_<FLAG>
// (upper case, '-' as '_').
package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/api/version"
	"code.cloudfoundry.org/quarks-job/webhook/internal/certs"
	"code.cloudfoundry.org/quarks-job/webhook/internal/endpoints"
	"code.cloudfoundry.org/quarks-job/webhook/internal/inject"
)

func main() {
	cmd, _ := command()
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// command returns the command and the configuration its flags and the
// environment fill.
func command() (*cobra.Command, *viper.Viper) {
	v := viper.New()
	cmd := &cobra.Command{
		Use:           "webhook",
		Short:         "QuarksJob admission webhook: persister injection, QuarksJob validation, certificates",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().String(),
		RunE:          func(*cobra.Command, []string) error { return run(v) },
	}
	cmd.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	defaults := inject.DefaultConfig()
	f := cmd.Flags()
	f.String("namespace", "", "namespace of the webhook and its certificate Secrets (required with --manage-certificates)")
	f.Int("port", 9443, "port of the webhook server")
	f.Int64("max-bytes-in-flight", endpoints.DefaultMaxBytesInFlight, "most admission request bytes held at once (at least 7 MiB); a source address holds at most a quarter, and a request without room waits --busy-wait, then is answered 429")
	f.Duration("busy-wait", 2e9, "how long an admission request waits for room within --max-bytes-in-flight")
	f.String("metrics-bind-address", ":8080", "address of the metrics endpoint; 0 turns it off")
	f.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	f.Bool("manage-certificates", true, "keep the CA and certificates in Secrets and patch the CA bundle into the webhook configurations; false: serve tls.crt/tls.key from --cert-dir and read the CA bundle from its ca.crt (cert-manager)")
	f.String("cert-dir", "", "directory holding tls.crt, tls.key and ca.crt when --manage-certificates=false")
	f.String("webhook-secret", "quarks-job-webhook-certs", "Secret holding the CA and the webhook's serving certificate")
	f.StringSlice("webhook-dns-names", nil, "DNS names (or IPs) of the webhook's serving certificate, e.g. quarks-job-webhook.NAMESPACE.svc")
	f.String("output-secret", "quarks-job-output-tls", "Secret receiving the controller's output-endpoint certificate, signed by the same CA; empty: none")
	f.StringSlice("output-dns-names", nil, "DNS names (or IPs) of the controller's output endpoint")
	f.String("mutating-webhook-configuration", "quarks-job-webhook", "MutatingWebhookConfiguration to patch the CA bundle into; empty: none")
	f.String("validating-webhook-configuration", "quarks-job-webhook", "ValidatingWebhookConfiguration to patch the CA bundle into; empty: none")
	f.Duration("ca-validity", 10*365*24*60*60e9, "lifetime of a new CA; renewed in its last third")
	f.Duration("cert-validity", 365*24*60*60e9, "lifetime of a new serving certificate; renewed in its last third")
	f.Duration("cert-check-interval", 60e9, "how often the Secrets and webhook configurations are checked")
	f.String("persister-image", "", "image of the injected persister sidecar (required)")
	f.String("persister-image-pull-policy", string(defaults.ImagePullPolicy), "pull policy of the persister image")
	f.StringSlice("persister-image-pull-secrets", nil, "Secrets (in each job's namespace) added to injected pods to pull the persister image")
	f.String("output-endpoint-url", "", "https URL of the controller's output endpoint, given to the persister; without a path, the upload path is appended (required)")
	f.String("persister-cpu-request", "10m", "CPU request of the persister")
	f.String("persister-memory-request", "32Mi", "memory request of the persister")
	f.String("persister-cpu-limit", "200m", "CPU limit of the persister")
	f.String("persister-memory-limit", "128Mi", "memory limit of the persister")
	f.Int64("persister-run-as-user", defaults.RunAsUser, "UID and GID the persister runs as (not 0)")
	f.Duration("termination-grace-period", 60e9, "least terminationGracePeriod of an injected pod (a longer one of the pod's is kept)")
	f.Duration("token-expiration", 3600e9, "expiry of the persister's projected token (at least 10m)")
	f.String("log-level", "info", "log level: debug, info, error, or a number (higher is more verbose)")
	f.Bool("log-development", false, "human-readable logs")

	v.SetEnvPrefix("QUARKS_WEBHOOK")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(f); err != nil {
		panic(err)
	}
	return cmd, v
}

func run(v *viper.Viper) error {
	logOpts := zap.Options{Development: v.GetBool("log-development")}
	if err := logLevel(v.GetString("log-level"), &logOpts); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&logOpts)))
	log := ctrl.Log.WithName("webhook")

	injectCfg, err := injectConfig(v)
	if err != nil {
		return err
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	scheme := endpoints.Scheme()

	var (
		tlsOpts  []func(*tls.Config)
		caBundle inject.CABundle
		certMgr  *certs.Manager
	)
	if v.GetBool("manage-certificates") {
		if v.GetString("namespace") == "" || len(names(v, "webhook-dns-names")) == 0 {
			return errors.New("--namespace and --webhook-dns-names are required with --manage-certificates")
		}
		if v.GetString("output-secret") != "" && len(names(v, "output-dns-names")) == 0 {
			return errors.New("--output-dns-names is required with --output-secret")
		}
		// Uncached: the webhook reads only its own Secrets and configurations,
		// so it needs no list/watch permission.
		c, err := client.New(restConfig, client.Options{Scheme: scheme})
		if err != nil {
			return err
		}
		certMgr = &certs.Manager{Client: c, Log: ctrl.Log.WithName("certs"), Config: certs.Config{
			Namespace:                      v.GetString("namespace"),
			WebhookSecret:                  v.GetString("webhook-secret"),
			WebhookNames:                   names(v, "webhook-dns-names"),
			OutputSecret:                   v.GetString("output-secret"),
			OutputNames:                    names(v, "output-dns-names"),
			MutatingWebhookConfiguration:   v.GetString("mutating-webhook-configuration"),
			ValidatingWebhookConfiguration: v.GetString("validating-webhook-configuration"),
			CAValidity:                     v.GetDuration("ca-validity"),
			CertValidity:                   v.GetDuration("cert-validity"),
			CheckInterval:                  v.GetDuration("cert-check-interval"),
		}}
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.GetCertificate = certMgr.GetCertificate })
		caBundle = certMgr.CABundle
	} else {
		dir := v.GetString("cert-dir")
		if dir == "" {
			return errors.New("--cert-dir is required with --manage-certificates=false")
		}
		caBundle = inject.FileCABundle(filepath.Join(dir, certs.CACertKey), ctrl.Log.WithName("ca-bundle"))
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: v.GetString("metrics-bind-address")},
		HealthProbeBindAddress: v.GetString("health-probe-bind-address"),
		WebhookServer: webhook.NewServer(webhook.Options{
			Port:    v.GetInt("port"),
			CertDir: v.GetString("cert-dir"),
			TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		return err
	}
	inFlight := endpoints.NewInFlight(v.GetInt64("max-bytes-in-flight"), v.GetDuration("busy-wait"))
	endpoints.Register(mgr.GetWebhookServer(), scheme, injectCfg, caBundle, inFlight.Wrap)
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook-server", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	if certMgr != nil {
		if err := mgr.Add(certMgr); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("certificates", certMgr.ReadyCheck); err != nil {
			return err
		}
	}
	build := version.Get()
	metrics.Registry.MustRegister(buildInfo(build))
	log.Info("starting", "version", build.Version, "revision", build.Revision, "goVersion", build.GoVersion, "persisterImage", injectCfg.Image, "outputEndpoint", injectCfg.Endpoint, "manageCertificates", certMgr != nil)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// buildInfo is the webhook's build_info series on the manager's metrics endpoint.
func buildInfo(build version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        version.MetricName,
		Help:        "Always 1; the labels are the running binary's component, version, git revision and Go version.",
		ConstLabels: build.Labels("webhook"),
	})
	g.Set(1)
	return g
}

func injectConfig(v *viper.Viper) (inject.Config, error) {
	cfg := inject.DefaultConfig()
	cfg.Image = v.GetString("persister-image")
	cfg.Endpoint = v.GetString("output-endpoint-url")
	if cfg.Image == "" || cfg.Endpoint == "" {
		return cfg, errors.New("--persister-image and --output-endpoint-url are required")
	}
	endpoint, err := url.Parse(cfg.Endpoint)
	if err != nil || endpoint.Scheme != "https" || endpoint.Host == "" {
		return cfg, fmt.Errorf("--output-endpoint-url %q is not an https URL", cfg.Endpoint)
	}
	if endpoint.Path == "" || endpoint.Path == "/" {
		endpoint.Path = upload.Path
	}
	cfg.Endpoint = endpoint.String()
	cfg.ImagePullPolicy = corev1.PullPolicy(v.GetString("persister-image-pull-policy"))
	cfg.ImagePullSecrets = names(v, "persister-image-pull-secrets")
	for _, q := range []struct {
		flag string
		list corev1.ResourceList
		name corev1.ResourceName
	}{
		{"persister-cpu-request", cfg.Resources.Requests, corev1.ResourceCPU},
		{"persister-memory-request", cfg.Resources.Requests, corev1.ResourceMemory},
		{"persister-cpu-limit", cfg.Resources.Limits, corev1.ResourceCPU},
		{"persister-memory-limit", cfg.Resources.Limits, corev1.ResourceMemory},
	} {
		quantity, err := resource.ParseQuantity(v.GetString(q.flag))
		if err != nil {
			return cfg, fmt.Errorf("--%s: %w", q.flag, err)
		}
		q.list[q.name] = quantity
	}
	cfg.RunAsUser = v.GetInt64("persister-run-as-user")
	cfg.RunAsGroup = cfg.RunAsUser
	if cfg.RunAsUser <= 0 {
		return cfg, errors.New("--persister-run-as-user must be a UID other than 0")
	}
	cfg.MinGracePeriodSeconds = int64(v.GetDuration("termination-grace-period").Seconds())
	cfg.TokenExpirationSeconds = int64(v.GetDuration("token-expiration").Seconds())
	if cfg.TokenExpirationSeconds < 600 {
		return cfg, errors.New("--token-expiration must be at least 10m")
	}
	return cfg, nil
}

func logLevel(value string, opts *zap.Options) error {
	if n, err := strconv.Atoi(value); err == nil {
		// zap's levels are int8; a verbosity past that would wrap around.
		if n < -math.MaxInt8 || n > math.MaxInt8 {
			return fmt.Errorf("--log-level %d: a number must be between %d and %d", n, -math.MaxInt8, math.MaxInt8)
		}
		opts.Level = zapcore.Level(-n)
		return nil
	}
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(value)); err != nil {
		return fmt.Errorf("--log-level %q: %w", value, err)
	}
	opts.Level = level
	return nil
}

// names reads a list flag; from the environment it is comma- or
// space-separated.
func names(v *viper.Viper, key string) []string {
	var out []string
	for _, item := range v.GetStringSlice(key) {
		for _, name := range strings.Split(item, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}
