// Command quarks-job is the QuarksJob operator: it wires flags, the manager
// and the controllers; the logic lives in internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/version"
	"code.cloudfoundry.org/quarks-job/controller/internal/controller/quarksjob"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint"
)

// envPrefix: every flag is also read from QUARKS_JOB_<FLAG>, dashes as underscores.
const envPrefix = "QUARKS_JOB"

func main() {
	if err := newCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	return command(viper.New())
}

// command is the quarks-job command; its flags and environment variables
// end up in v.
func command(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "quarks-job",
		Short:         "Runs QuarksJobs: Jobs started on triggers whose output is kept in Secrets",
		SilenceUsage:  true,
		SilenceErrors: false,
		Version:       version.Get().String(),
		RunE: func(*cobra.Command, []string) error {
			return run(v)
		},
	}
	cmd.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	f := cmd.Flags()
	f.String("kubeconfig", "", "path to a kubeconfig; in-cluster configuration when empty")
	f.StringSlice("watch-namespaces", nil, "namespaces to watch (comma-separated); all when empty")
	f.String("watch-namespace-selector", "", "label selector of the namespaces whose QuarksJobs to run, e.g. quarks.cloudfoundry.org/monitored=quarks-job; all when empty")
	f.String("log-level", "info", "log level: debug, info or error")
	f.Int("workers", 16, "QuarksJobs reconciled in parallel")
	f.Duration("config-change-debounce", time.Second, "how long referenced configuration must stay unchanged before a change runs a one-off again")
	f.Duration("run-start-timeout", quarksjob.DefaultRunStartTimeout, "how long a run's pods may take to start (created, scheduled, images pulled) before the run fails with the reason")
	f.Bool("leader-elect", false, "elect a leader so that only one replica acts")
	f.String("leader-election-namespace", "", "namespace of the leader election lease; the pod's namespace when empty")
	f.String("namespace", "", "the controller's own namespace, where uploads that wait for the kubelet's exit codes are held; the pod's namespace when empty")
	f.String("leader-election-id", "quarks-job.quarks.cloudfoundry.org", "name of the leader election lease")
	f.String("metrics-bind-address", ":8080", "address of the metrics endpoint; 0 disables it")
	f.String("health-probe-bind-address", ":8081", "address of the health and readiness probes")
	f.String("output-bind-address", outputendpoint.DefaultBindAddress, "address of the HTTPS output endpoint the persister uploads to")
	f.String("output-cert-dir", "", "folder with tls.crt and tls.key of the output endpoint; without it the endpoint is off and declared output cannot be persisted")
	f.Duration("output-exit-code-timeout", outputendpoint.DefaultExitCodeTimeout, "how long an upload waits for the kubelet to report the containers' exit codes")
	f.String("persister-image", "", "the persister image the webhook injects; when set, uploads from pods whose persister runs an image of another repository are refused")
	f.Int64("output-max-bytes-in-flight", outputendpoint.DefaultMaxBytesInFlight, "upload bytes the output endpoint holds in memory at once; more uploads wait or are asked to retry")
	f.Int("output-max-secrets-per-upload", output.DefaultMaxSecrets, "Secrets one upload may make (a fan-out output makes one per key); a file beyond it is refused with a message on the run")
	f.Float64("output-secret-writes-per-second", outputendpoint.DefaultSecretWritesPerSecond, "output Secrets written per second for the uploads of one namespace (burst twice as many); each namespace has its own share")
	f.Float64("output-token-reviews-per-second", outputendpoint.DefaultTokenReviewsPerSecond, "TokenReviews the output endpoint spends per second on tokens it has not seen")
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(f); err != nil {
		panic(err)
	}
	return cmd
}

// watchNamespaces are the namespaces of --watch-namespaces, or of
// QUARKS_JOB_WATCH_NAMESPACES, which viper hands over unsplit ("a,b").
// Commas and spaces both separate them.
func watchNamespaces(v *viper.Viper) []string {
	var namespaces []string
	for _, item := range v.GetStringSlice("watch-namespaces") {
		namespaces = append(namespaces, strings.FieldsFunc(item, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
	}
	return namespaces
}

func run(v *viper.Viper) error {
	level, err := zapcore.ParseLevel(v.GetString("log-level"))
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	ctrl.SetLogger(zap.New(zap.Level(level)))
	build := version.Get()
	ctrl.Log.Info("starting quarks-job", "version", build.Version, "revision", build.Revision, "goVersion", build.GoVersion)
	// Go does not know its container's memory limit: under load (a burst of
	// uploads with many QuarksJobs cached) the heap grows past it and the
	// controller is killed. A soft limit of 90% of the cgroup's makes the
	// garbage collector work harder first; GOMEMLIMIT, when set, wins.
	if _, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup)); err != nil {
		ctrl.Log.Error(err, "setting the Go memory limit from the container's; going on without")
	}

	if path := v.GetString("kubeconfig"); path != "" {
		// controller-runtime's config loader reads the KUBECONFIG variable.
		if err := os.Setenv("KUBECONFIG", path); err != nil {
			return err
		}
	}
	config, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes configuration: %w", err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := qjv1.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         quarksjob.CacheOptions(watchNamespaces(v)),
		Metrics:                       metricsserver.Options{BindAddress: v.GetString("metrics-bind-address")},
		HealthProbeBindAddress:        v.GetString("health-probe-bind-address"),
		LeaderElection:                v.GetBool("leader-elect"),
		LeaderElectionID:              v.GetString("leader-election-id"),
		LeaderElectionNamespace:       v.GetString("leader-election-namespace"),
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	var namespaceSelector labels.Selector
	if raw := v.GetString("watch-namespace-selector"); raw != "" {
		if namespaceSelector, err = labels.Parse(raw); err != nil {
			return fmt.Errorf("--watch-namespace-selector: %w", err)
		}
	}
	reconciler := &quarksjob.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("quarks-job"),

		ConfigChangeDebounce: v.GetDuration("config-change-debounce"),
		RunStartTimeout:      v.GetDuration("run-start-timeout"),
		NamespaceSelector:    namespaceSelector,
		PersisterImage:       v.GetString("persister-image"),
	}
	if err := reconciler.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: v.GetInt("workers")}); err != nil {
		return err
	}
	if dir := v.GetString("output-cert-dir"); dir != "" {
		watched := map[string]bool{}
		for _, ns := range watchNamespaces(v) {
			watched[ns] = true
		}
		err := outputendpoint.Add(mgr, outputendpoint.Options{
			BindAddress:     v.GetString("output-bind-address"),
			CertDir:         dir,
			ExitCodeTimeout: v.GetDuration("output-exit-code-timeout"),
			PersisterImage:  v.GetString("persister-image"),
			HoldNamespace:   ownNamespace(v),
			Watches: func(ctx context.Context, namespace string) (bool, error) {
				if len(watched) > 0 && !watched[namespace] {
					return false, nil
				}
				return reconciler.Watches(ctx, namespace)
			},
			Limits: outputendpoint.Limits{
				MaxBytesInFlight:      v.GetInt64("output-max-bytes-in-flight"),
				TokenReviewsPerSecond: v.GetFloat64("output-token-reviews-per-second"),
				MaxSecretsPerUpload:   v.GetInt("output-max-secrets-per-upload"),
				SecretWritesPerSecond: v.GetFloat64("output-secret-writes-per-second"),
			},
		})
		if err != nil {
			return err
		}
	} else {
		ctrl.Log.Info("the output endpoint is off (no --output-cert-dir): runs that declare output will fail")
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready once the caches are filled: before that, the output endpoint
	// cannot resolve an upload's pod and run, and would ask it to retry.
	if err := mgr.AddReadyzCheck("caches", cachesSynced(mgr.GetCache())); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

// serviceAccountNamespace is the file in which the kubelet gives a pod its
// namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ownNamespace is the controller's namespace: --namespace, else the pod's;
// empty outside a pod.
func ownNamespace(v *viper.Viper) string {
	if ns := v.GetString("namespace"); ns != "" {
		return ns
	}
	raw, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(raw))
}

// cachesSynced is a readiness check that passes once the cache's informers
// have synced.
func cachesSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("the caches have not synced yet")
		}
		return nil
	}
}
