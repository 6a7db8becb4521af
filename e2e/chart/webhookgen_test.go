package chart_test

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The chart's webhook configurations are the webhook's own: what endpoints.MutatingWebhookConfiguration
// and ValidatingWebhookConfiguration (webhook/internal/endpoints) return for the release's name,
// Service and pod webhook timeout. The chart renders them from the file webhookgen writes; this runs
// webhookgen (it must live in the webhook module to reach the internal package) with the release's
// values, so a stale file or a template that changes more than the release's part fails here.
func TestWebhookConfigurationsAreTheWebhooks(t *testing.T) {
	webhookgen := filepath.Join(t.TempDir(), "webhookgen")
	build := exec.Command("go", "build", "-o", webhookgen, "./cmd/webhookgen")
	build.Dir = "../../webhook"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building webhookgen: %v\n%s", err, out)
	}
	defaultTimeout := fmt.Sprint(loadChart(t).Values["webhook"].(map[string]any)["timeoutSeconds"])

	for _, tc := range []struct {
		name                string
		set                 []string
		configName, service string
		podTimeout          string
	}{
		{"defaults", nil, webhookConfigName, webhookService, defaultTimeout},
		{
			"the release's values",
			// The namespaceSelector is the chart's own (TestWatch*); it must change nothing else.
			[]string{"fullnameOverride=qj", "webhook.timeoutSeconds=17", "certManager.enabled=true", "watch.mode=namespaces", "watch.namespaces={team-a}"},
			"qj-webhook", "qj-webhook", "17",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.set...)
			svc := get[*corev1.Service](t, r, "Service", tc.service)
			out, err := exec.Command(webhookgen,
				"-name", tc.configName, "-namespace", releaseNS, "-service", svc.Name,
				"-port", strconv.Itoa(int(svc.Spec.Ports[0].Port)), "-pod-timeout-seconds", tc.podTimeout).Output()
			if err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					t.Fatalf("webhookgen: %v\n%s", err, exit.Stderr)
				}
				t.Fatalf("webhookgen: %v", err)
			}
			var want struct {
				Items []map[string]any `json:"items"`
			}
			if err := yaml.Unmarshal(out, &want); err != nil || len(want.Items) != 2 {
				t.Fatalf("webhookgen wrote %d items (%v), want a List of the two configurations:\n%s", len(want.Items), err, out)
			}
			wantMutating := decodeStrict[admissionregistrationv1.MutatingWebhookConfiguration](t, want.Items[0])
			wantValidating := decodeStrict[admissionregistrationv1.ValidatingWebhookConfiguration](t, want.Items[1])

			// Labels and the cert-manager annotation are the chart's (TestWebhookConfigurations, TestCertManager).
			mutating := get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", tc.configName).DeepCopy()
			mutating.Labels, mutating.Annotations = nil, nil
			for i := range mutating.Webhooks {
				mutating.Webhooks[i].NamespaceSelector = nil
			}
			validating := get[*admissionregistrationv1.ValidatingWebhookConfiguration](t, r, "ValidatingWebhookConfiguration", tc.configName).DeepCopy()
			validating.Labels, validating.Annotations = nil, nil
			for i := range validating.Webhooks {
				validating.Webhooks[i].NamespaceSelector = nil
			}
			assertSameYAML(t, "MutatingWebhookConfiguration", mutating, wantMutating)
			assertSameYAML(t, "ValidatingWebhookConfiguration", validating, wantValidating)
		})
	}
}

func decodeStrict[T any](t *testing.T, item map[string]any) *T {
	t.Helper()
	raw, err := yaml.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := yaml.UnmarshalStrict(raw, out); err != nil {
		t.Fatalf("webhookgen's %T does not decode strictly: %v\n%s", out, err, raw)
	}
	return out
}

func assertSameYAML(t *testing.T, kind string, got, want any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	gotYAML, _ := yaml.Marshal(got)
	wantYAML, _ := yaml.Marshal(want)
	gotLines, wantLines := strings.Split(string(gotYAML), "\n"), strings.Split(string(wantYAML), "\n")
	line := 0
	for line < min(len(gotLines), len(wantLines)) && gotLines[line] == wantLines[line] {
		line++
	}
	t.Errorf("the chart's %s is not the webhook's; first difference at line %d:\n  rendered:   %s\n  webhookgen: %s\nrendered:\n%s\nwebhookgen:\n%s",
		kind, line+1, lineAt(gotLines, line), lineAt(wantLines, line), gotYAML, wantYAML)
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return strings.TrimSpace(lines[i])
	}
	return "(end)"
}
