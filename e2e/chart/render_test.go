// Package chart_test renders the Helm chart with the Helm SDK, as `helm template` would, and checks
// the manifests. No cluster is needed.
package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../../charts/quarks-job"
	releaseName = "quarks-job"
	releaseNS   = "quarks-system"
)

// kubeVersion is the cluster version the chart is rendered for.
var kubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}

// object is one rendered manifest: its kind and name, and the manifest decoded strictly into
// the Go type of its kind (unstructured for kinds client-go does not know).
type object struct {
	Kind, Name, Namespace string
	Typed                 any
	Raw                   map[string]any
}

// rendered is what one `helm template` produced.
type rendered struct {
	objects []object
	notes   string
}

// typedKinds decode strictly: a misspelled or misplaced field fails the test.
var typedKinds = map[string]func() any{
	"CustomResourceDefinition":         func() any { return &apiextensionsv1.CustomResourceDefinition{} },
	"Deployment":                       func() any { return &appsv1.Deployment{} },
	"Service":                          func() any { return &corev1.Service{} },
	"ServiceAccount":                   func() any { return &corev1.ServiceAccount{} },
	"Role":                             func() any { return &rbacv1.Role{} },
	"RoleBinding":                      func() any { return &rbacv1.RoleBinding{} },
	"ClusterRole":                      func() any { return &rbacv1.ClusterRole{} },
	"ClusterRoleBinding":               func() any { return &rbacv1.ClusterRoleBinding{} },
	"PodDisruptionBudget":              func() any { return &policyv1.PodDisruptionBudget{} },
	"MutatingWebhookConfiguration":     func() any { return &admissionregistrationv1.MutatingWebhookConfiguration{} },
	"ValidatingWebhookConfiguration":   func() any { return &admissionregistrationv1.ValidatingWebhookConfiguration{} },
	"ValidatingAdmissionPolicy":        func() any { return &admissionregistrationv1.ValidatingAdmissionPolicy{} },
	"ValidatingAdmissionPolicyBinding": func() any { return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{} },
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return c
}

// values parses --set style assignments ("a.b=c", "list={x,y}").
func values(t *testing.T, sets ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	return vals
}

// renderErr renders the chart as `helm template` does and returns its error.
func renderErr(t *testing.T, sets ...string) (*rendered, error) {
	t.Helper()
	return renderFor(t, kubeVersion, sets...)
}

// renderFor is renderErr for a cluster of another Kubernetes version.
func renderFor(t *testing.T, version *chartutil.KubeVersion, sets ...string) (*rendered, error) {
	t.Helper()
	return renderChart(t, loadChart(t), version, sets...)
}

// renderChart renders c, the chart as loaded and then changed by the test.
func renderChart(t *testing.T, c *chart.Chart, version *chartutil.KubeVersion, sets ...string) (*rendered, error) {
	t.Helper()
	install := action.NewInstall(&action.Configuration{})
	install.ClientOnly = true
	install.DryRun = true
	install.ReleaseName = releaseName
	install.Namespace = releaseNS
	install.KubeVersion = version
	rel, err := install.Run(c, values(t, sets...))
	if err != nil {
		return nil, err
	}
	out := &rendered{notes: rel.Info.Notes}
	for _, manifest := range releaseutil.SplitManifests(rel.Manifest) {
		if strings.TrimSpace(manifest) == "" {
			continue
		}
		raw := map[string]any{}
		if err := yaml.Unmarshal([]byte(manifest), &raw); err != nil {
			return nil, fmt.Errorf("rendered manifest is not YAML: %w\n%s", err, manifest)
		}
		if len(raw) == 0 {
			continue
		}
		u := unstructured.Unstructured{Object: raw}
		obj := object{Kind: u.GetKind(), Name: u.GetName(), Namespace: u.GetNamespace(), Raw: raw, Typed: &u}
		if newTyped, ok := typedKinds[obj.Kind]; ok {
			obj.Typed = newTyped()
			if err := yaml.UnmarshalStrict([]byte(manifest), obj.Typed); err != nil {
				return nil, fmt.Errorf("%s %s does not decode strictly: %w", obj.Kind, obj.Name, err)
			}
		}
		out.objects = append(out.objects, obj)
	}
	return out, nil
}

func render(t *testing.T, sets ...string) *rendered {
	t.Helper()
	r, err := renderErr(t, sets...)
	if err != nil {
		t.Fatalf("rendering with %q: %v", sets, err)
	}
	return r
}

// kinds counts the objects of each kind.
func (r *rendered) kinds() map[string]int {
	counts := map[string]int{}
	for _, o := range r.objects {
		counts[o.Kind]++
	}
	return counts
}

func (r *rendered) all(kind string) []object {
	var out []object
	for _, o := range r.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r *rendered) find(kind, name string) (object, bool) {
	for _, o := range r.objects {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

func get[T any](t *testing.T, r *rendered, kind, name string) T {
	t.Helper()
	o, ok := r.find(kind, name)
	if !ok {
		t.Fatalf("no %s %q rendered; rendered: %v", kind, name, r.names())
	}
	typed, ok := o.Typed.(T)
	if !ok {
		t.Fatalf("%s %s is a %T", kind, name, o.Typed)
	}
	return typed
}

func (r *rendered) names() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, o.Kind+"/"+o.Namespace+"/"+o.Name)
	}
	return out
}

// args parses a container's --flag=value arguments. A flag given twice is an error.
func args(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range c.Args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok {
			t.Fatalf("container %s: argument %q is not --flag=value", c.Name, a)
		}
		if _, dup := out[name]; dup {
			t.Fatalf("container %s: --%s given twice", c.Name, name)
		}
		out[name] = value
	}
	return out
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// sourceFlags returns the flags a binary's main.go defines (f.String("name", ...) and the like).
func sourceFlags(t *testing.T, mainGo string) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("../..", mainGo))
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`\bf\.[A-Z][A-Za-z0-9]*\("([a-z0-9-]+)"`).FindAllSubmatch(src, -1) {
		flags = append(flags, string(m[1]))
	}
	if len(flags) < 5 {
		t.Fatalf("found only %d flags in %s: the pattern no longer matches the source", len(flags), mainGo)
	}
	return flags
}

// rbacMarker is one +kubebuilder:rbac marker: a permission some code needs.
type rbacMarker struct {
	file                     string
	groups, resources, verbs []string
}

// rbacMarkers returns the +kubebuilder:rbac markers under dir.
func rbacMarkers(t *testing.T, dir string) []rbacMarker {
	t.Helper()
	var markers []rbacMarker
	marker := regexp.MustCompile(`//\s*\+kubebuilder:rbac:(\S+)`)
	err := filepath.WalkDir(filepath.Join("../..", dir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range marker.FindAllSubmatch(src, -1) {
			rm := rbacMarker{file: path}
			for _, kv := range strings.Split(string(m[1]), ",") {
				key, value, _ := strings.Cut(kv, "=")
				list := strings.Split(strings.Trim(value, `"`), ";")
				switch key {
				case "groups":
					rm.groups = list
				case "resources":
					rm.resources = list
				case "verbs":
					rm.verbs = list
				}
			}
			markers = append(markers, rm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(markers) == 0 {
		t.Fatalf("no +kubebuilder:rbac markers under %s", dir)
	}
	return markers
}

// grants reports whether rules allow verb on group/resource (in any name).
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if len(r.ResourceNames) > 0 {
			continue
		}
		if (slices.Contains(r.APIGroups, group) || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}

// clusterScoped are the resources the controller's markers name that are not namespaced.
var clusterScoped = map[string]bool{"tokenreviews": true, "namespaces": true}
