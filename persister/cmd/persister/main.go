// Command persister is the sidecar of every QuarksJob pod that declares
// output: it validates output files as they appear and uploads them to the
// controller's output endpoint when the job's containers have exited.
// Every flag can also be set by the environment variable named in its help;
// the pod webhook sets those.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
	"code.cloudfoundry.org/quarks-job/api/version"
	"code.cloudfoundry.org/quarks-job/persister/internal/collect"
	"code.cloudfoundry.org/quarks-job/persister/internal/sidecar"
	"code.cloudfoundry.org/quarks-job/persister/internal/uploader"
)

// flag name → environment variable.
var env = map[string]string{ //nolint:gosec // G101: names of variables, not credentials
	"endpoint":       upload.EnvEndpoint,
	"ca-bundle":      upload.EnvCABundle,
	"output-files":   upload.EnvOutputFiles,
	"pod-name":       upload.EnvPodName,
	"pod-namespace":  upload.EnvPodNamespace,
	"upload-timeout": upload.EnvUploadTimeout,
	"output-root":    "QUARKS_JOB_OUTPUT_ROOT",
	"token-path":     "QUARKS_JOB_TOKEN_PATH",
	"log-format":     "QUARKS_JOB_LOG_FORMAT",
}

// memoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT says
// otherwise: the sidecar runs in every job pod and should stay small.
const memoryLimit = 12 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	if err := command(viper.New()).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "persister:", err)
		os.Exit(2)
	}
}

// command is the persister command; its flags and environment variables end up in v.
func command(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "persister",
		Short:         "Validate a QuarksJob pod's output files and upload them to the controller when its containers exit",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		Version:       version.Get().String(),
		RunE: func(*cobra.Command, []string) error {
			terminate := make(chan os.Signal, 1)
			signal.Notify(terminate, syscall.SIGTERM, syscall.SIGINT)
			done := make(chan struct{})
			go func() { <-terminate; close(done) }()
			os.Exit(sidecar.Run(done, config(v)))
			return nil
		},
	}
	cmd.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	f := cmd.Flags()
	f.String("endpoint", "", "URL of the controller's output endpoint")
	f.String("ca-bundle", "", "PEM CA bundle that signs the endpoint's certificate")
	f.String("output-files", "", `files each container declares, as JSON: {"container": ["file.json"]}`)
	f.String("pod-name", "", "name of this pod, for logs")
	f.String("pod-namespace", "", "namespace of this pod, for logs")
	f.String("upload-timeout", upload.DefaultUploadTimeout, "how long after SIGTERM the upload may take: a duration (25s) or seconds (25); keep it below the pod's terminationGracePeriodSeconds")
	f.String("output-root", upload.OutputRoot, "directory holding one output directory per container")
	f.String("token-path", upload.TokenPath, "projected service-account token (audience "+upload.Audience+")")
	f.String("log-format", "text", "text or json")
	for name, variable := range env {
		flag := f.Lookup(name)
		flag.Usage += " [$" + variable + "]"
		_ = v.BindPFlag(name, flag)
		_ = v.BindEnv(name, variable)
	}
	return cmd
}

// config builds the sidecar's configuration. Errors do not stop the
// persister (see sidecar.Run); they are carried in ConfigError.
func config(v *viper.Viper) sidecar.Config {
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if v.GetString("log-format") == "json" {
		handler = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(handler).With("pod", v.GetString("pod-namespace")+"/"+v.GetString("pod-name"))

	cfg := sidecar.Config{Root: v.GetString("output-root"), Log: log, Declared: collect.Declared{}, Version: version.Get().Version}
	var problems []error
	timeout, err := parseTimeout(v.GetString("upload-timeout"))
	if err != nil {
		problems = append(problems, err)
		timeout, _ = parseTimeout(upload.DefaultUploadTimeout)
	}
	cfg.UploadTimeout = timeout
	if cfg.Declared, err = collect.ParseDeclared(v.GetString("output-files")); err != nil {
		problems = append(problems, err)
		cfg.Declared = collect.Declared{}
	}
	endpoint := v.GetString("endpoint")
	if endpoint == "" {
		problems = append(problems, fmt.Errorf("%s is not set", upload.EnvEndpoint))
	}
	httpClient, err := uploader.NewHTTPClient([]byte(v.GetString("ca-bundle")))
	if err != nil {
		problems = append(problems, fmt.Errorf("%s: %w", upload.EnvCABundle, err))
	}
	if len(problems) > 0 {
		cfg.ConfigError = errors.Join(problems...)
		return cfg
	}
	cfg.Uploader = &uploader.Client{Endpoint: endpoint, TokenPath: v.GetString("token-path"), HTTP: httpClient, Log: log,
		Version: version.Get().Version}
	return cfg
}

// minUploadTimeout is the least time an upload gets, even when the pod's
// grace period is 0 or 1 s (the kubelet may kill the persister sooner).
const minUploadTimeout = time.Second

// parseTimeout reads "25s" or "25" (seconds).
func parseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if seconds, atoiErr := strconv.Atoi(s); atoiErr == nil {
		d, err = time.Duration(seconds)*time.Second, nil
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q is neither a duration (25s) nor seconds (25)", upload.EnvUploadTimeout, s)
	}
	return max(d, minUploadTimeout), nil
}
