package chart_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"

	"sigs.k8s.io/yaml"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// values.schema.json must stop a bad install before anything reaches the cluster, with a message
// that names the value.
func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want []string // each must appear in the error
	}{
		{[]string{"controller.replicas=-1"}, []string{"controller", "replicas", "minimum"}},
		{[]string{"webhook.replicas=-2"}, []string{"webhook", "replicas", "minimum"}},
		{[]string{"controller.replicas=two"}, []string{"controller", "replicas"}},
		{[]string{"persister.image.pullPolicy=Sometimes"}, []string{"persister", "pullPolicy", "IfNotPresent"}},
		{[]string{"webhook.image.pullPolicy=always"}, []string{"webhook", "pullPolicy"}},
		{[]string{"controller.image.digest=1234"}, []string{"controller", "digest"}},
		{[]string{"persister.image.repository=busybox:latest"}, []string{"persister", "repository"}},
		{[]string{"watch.mode=some"}, []string{"watch", "mode"}},
		{[]string{"watch.mode=namespaces"}, []string{"watch", "namespaces"}},
		{[]string{"watch.mode=namespaces", "watch.namespaces={Team_A}"}, []string{"watch", "namespaces"}},
		{[]string{"watch.mode=selector", "watch.namespaceSelector.matchExpressions[0].key=a", "watch.namespaceSelector.matchExpressions[0].operator=Maybe"}, []string{"operator"}},
		{[]string{"persister.runAsUser=0"}, []string{"persister", "runAsUser"}},
		{[]string{"persister.tokenExpiration=ten minutes"}, []string{"persister", "tokenExpiration"}},
		{[]string{"webhook.timeoutSeconds=31"}, []string{"webhook", "timeoutSeconds"}},
		{[]string{"imagePullSecrets={regcred}"}, []string{"imagePullSecrets"}},
		{[]string{"controller.replica=2"}, []string{"replica"}},
		{[]string{"certManager.issuerRef.kind=ClusterIssuer"}, []string{"issuerRef", "name"}},
		{[]string{"admissionPolicy.exemptUsers=ci-bot"}, []string{"admissionPolicy", "exemptUsers"}},
		{[]string{"admissionPolicy.exemptGroup={ops}"}, []string{"exemptGroup"}},
	} {
		t.Run(strings.Join(tc.set, ","), func(t *testing.T) {
			_, err := renderErr(t, tc.set...)
			if err == nil {
				t.Fatalf("values %q accepted", tc.set)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
			if !strings.Contains(err.Error(), "schema") {
				t.Errorf("rejected, but not by the values schema: %v", err)
			}
		})
	}
}

// Rules across values fail the rendering with a message that says what to do.
func TestInconsistentValuesAreRejected(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"watch.namespaces={a}"}, "set watch.mode=namespaces"},
		{[]string{"watch.mode=selector", "watch.namespaces={a}"}, "set watch.mode=namespaces"},
		{[]string{"watch.namespaceSelector.matchLabels.team=a"}, "set watch.mode=selector"},
		{[]string{"metrics.port=8081"}, "metrics.port 8081 collides"},
		{[]string{"metrics.port=9443"}, "metrics.port 9443 collides"},
	} {
		_, err := renderErr(t, tc.set...)
		if err == nil {
			t.Errorf("values %q accepted", tc.set)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %q: error does not say %q: %v", tc.set, tc.want, err)
		}
	}
	if _, err := renderErr(t, "metrics.enabled=false", "metrics.port=8081"); err != nil {
		t.Errorf("metrics port checked while metrics are off: %v", err)
	}
}

func TestSchemaAcceptsGoodValues(t *testing.T) {
	for _, set := range [][]string{
		{"controller.replicas=0"},
		{"webhook.podDisruptionBudget.maxUnavailable=50%"},
		{"controller.image.digest=" + digestA, "controller.image.tag="},
		{"persister.image.repository=registry.example.com:5000/team/persister"},
		{"watch.mode=namespaces", "watch.namespaces={a,b-2}"},
		{"watch.mode=selector", "watch.namespaceSelector.matchLabels.team=a"},
		{"persister.resources.requests.cpu=0.5", "persister.resources.limits.memory=1Gi"},
		{"global.imageRegistry=example.com"},
	} {
		if _, err := renderErr(t, set...); err != nil {
			t.Errorf("values %q rejected: %v", set, err)
		}
	}
}

// helm lint, with the SDK's lint package: no message at all, except the recommendation of an icon
// (the project has no icon to point at).
func TestLint(t *testing.T) {
	for _, set := range [][]string{
		nil,
		{"watch.mode=namespaces", "watch.namespaces={team-a,team-b}"},
		{"watch.mode=selector"},
		{"certManager.enabled=true", "metrics.serviceMonitor.enabled=true"},
		{"crds.enabled=false", "rbac.create=false", "serviceAccount.create=false"},
	} {
		linter := lint.AllWithKubeVersion(chartDir, values(t, set...), releaseNS, kubeVersion)
		for _, msg := range linter.Messages {
			if msg.Severity == support.InfoSev && strings.Contains(msg.Err.Error(), "icon is recommended") {
				continue
			}
			t.Errorf("lint %q: %s", set, msg)
		}
		if linter.HighestSeverity > support.InfoSev {
			t.Errorf("lint %q: highest severity %d", set, linter.HighestSeverity)
		}
	}
}

// The CRD's rules on secretLabels and secretAnnotations refuse exactly the keys the controller
// reserves on output Secrets (api: ReservedSecretLabels, ReservedSecretAnnotations).
func TestReservedSecretKeysInTheCRD(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "files/crds/quarks.cloudfoundry.org_quarksjobs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rule := func(keys []string) string {
		quoted := make([]string, len(keys))
		for i, k := range keys {
			quoted[i] = "'" + k + "'"
		}
		return "![" + strings.Join(quoted, ", ") + "].exists(k, k in self)"
	}
	var crd any
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	rules := map[string]int{}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["rule"].(string); ok {
				rules[r]++
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(crd)
	for what, want := range map[string]struct {
		keys  []string
		count int
	}{
		// The output's and each file's, in the spec and in the status's copy of the output.
		"labels":      {qjv1.ReservedSecretLabels, 4},
		"annotations": {qjv1.ReservedSecretAnnotations, 2},
	} {
		if got := rules[rule(want.keys)]; got != want.count {
			t.Errorf("the CRD holds the rule %s for secret %s %d times, want %d: the kubebuilder markers in api/quarksjob/v1alpha1/types.go and the reserved keys in names.go differ (then make generate)",
				rule(want.keys), what, got, want.count)
		}
	}
}
