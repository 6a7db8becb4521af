package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"code.cloudfoundry.org/quarks-job/api/version"
)

func TestFlagsFromTheEnvironment(t *testing.T) {
	t.Setenv("QUARKS_WEBHOOK_WEBHOOK_DNS_NAMES", "quarks-job-webhook.quarks.svc, quarks-job-webhook.quarks.svc.cluster.local")
	t.Setenv("QUARKS_WEBHOOK_PERSISTER_IMAGE", "registry.example/persister:1")
	t.Setenv("QUARKS_WEBHOOK_OUTPUT_ENDPOINT_URL", "https://quarks-job-output.quarks.svc:8443")
	t.Setenv("QUARKS_WEBHOOK_TERMINATION_GRACE_PERIOD", "90s")
	cmd, v := command()
	if err := cmd.Flags().Parse([]string{"--persister-memory-limit=256Mi"}); err != nil {
		t.Fatal(err)
	}

	if got, want := names(v, "webhook-dns-names"), []string{"quarks-job-webhook.quarks.svc", "quarks-job-webhook.quarks.svc.cluster.local"}; !slices.Equal(got, want) {
		t.Errorf("webhook-dns-names = %q, want %q", got, want)
	}
	cfg, err := injectConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Image != "registry.example/persister:1" || cfg.MinGracePeriodSeconds != 90 {
		t.Errorf("image %q grace %d; want the environment's values", cfg.Image, cfg.MinGracePeriodSeconds)
	}
	if cfg.Endpoint != "https://quarks-job-output.quarks.svc:8443/v1alpha1/output" {
		t.Errorf("endpoint = %q, want the upload path appended", cfg.Endpoint)
	}
	if got := cfg.Resources.Limits.Memory().String(); got != "256Mi" {
		t.Errorf("memory limit = %s, want the flag's 256Mi", got)
	}
}

func TestInjectConfigRejectsBadValues(t *testing.T) {
	for name, args := range map[string][]string{
		"no image":     {"--output-endpoint-url=https://x"},
		"plain http":   {"--persister-image=p", "--output-endpoint-url=http://x"},
		"root":         {"--persister-image=p", "--output-endpoint-url=https://x", "--persister-run-as-user=0"},
		"short token":  {"--persister-image=p", "--output-endpoint-url=https://x", "--token-expiration=1m"},
		"bad quantity": {"--persister-image=p", "--output-endpoint-url=https://x", "--persister-cpu-limit=lots"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd, v := command()
			if err := cmd.Flags().Parse(args); err != nil {
				t.Fatal(err)
			}
			if _, err := injectConfig(v); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestLogLevel(t *testing.T) {
	for value, want := range map[string]zapcore.Level{
		"info":  zapcore.InfoLevel,
		"debug": zapcore.DebugLevel,
		"0":     zapcore.InfoLevel,
		"5":     zapcore.Level(-5),
	} {
		var opts zap.Options
		if err := logLevel(value, &opts); err != nil {
			t.Errorf("%s: %v", value, err)
		} else if opts.Level != want {
			t.Errorf("%s: level %v, want %v", value, opts.Level, want)
		}
	}
	// A number past what zap's int8 levels hold is refused, not wrapped.
	for _, value := range []string{"128", "-128", "loud"} {
		if err := logLevel(value, &zap.Options{}); err == nil {
			t.Errorf("%s: accepted", value)
		}
	}
}

func TestVersion(t *testing.T) {
	cmd, _ := command()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if want := "webhook " + version.Get().String() + "\n"; out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}

func TestBuildInfo(t *testing.T) {
	registry := prometheus.NewRegistry()
	registry.MustRegister(buildInfo(version.Info{Version: "v0.2.0", Revision: "abc", GoVersion: "go1.26.8"}))
	want := `# HELP quarks_job_build_info Always 1; the labels are the running binary's component, version, git revision and Go version.
# TYPE quarks_job_build_info gauge
quarks_job_build_info{component="webhook",goversion="go1.26.8",revision="abc",version="v0.2.0"} 1
`
	if err := testutil.GatherAndCompare(registry, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
