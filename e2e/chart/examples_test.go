package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/releaseutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

const examplesDir = "../../docs/examples"

// example is one QuarksJob of docs/examples.
type example struct {
	file string
	qjob *qjv1.QuarksJob
}

// examples reads every QuarksJob of docs/examples; each must decode strictly and pass the OpenAPI
// schema of the CRD the chart installs.
func examples(t *testing.T) map[string]example {
	t.Helper()
	validator := crdValidator(t)
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", examplesDir, err)
	}
	out := map[string]example{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range releaseutil.SplitManifests(string(data)) {
			var meta struct{ Kind string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if meta.Kind != "QuarksJob" {
				continue
			}
			qjob := &qjv1.QuarksJob{}
			if err := yaml.UnmarshalStrict([]byte(doc), qjob); err != nil {
				t.Errorf("%s: not a valid QuarksJob: %v", file, err)
				continue
			}
			raw := map[string]any{}
			if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
				t.Fatal(err)
			}
			if errs := validation.ValidateCustomResource(field.NewPath(""), raw, validator); len(errs) > 0 {
				t.Errorf("%s: QuarksJob %s does not pass the CRD's schema: %v", file, qjob.Name, errs.ToAggregate())
			}
			if _, dup := out[qjob.Name]; dup {
				t.Errorf("%s: QuarksJob name %s is used by another example too", file, qjob.Name)
			}
			out[qjob.Name] = example{file: filepath.Base(file), qjob: qjob}
		}
	}
	return out
}

func crdValidator(t *testing.T) validation.SchemaValidator {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "files/crds/quarks.cloudfoundry.org_quarksjobs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatal(err)
	}
	internal := &apiextensions.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(crd.Spec.Versions[0].Schema, internal, nil); err != nil {
		t.Fatal(err)
	}
	validator, _, err := validation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		t.Fatal(err)
	}
	return validator
}

// The examples the users of the original know, each showing what it is about.
func TestExamplesCoverTheFeatures(t *testing.T) {
	all := examples(t)
	for _, tc := range []struct {
		name, file string
		shows      func(*qjv1.QuarksJob) bool
	}{
		{"errand", "errand.yaml", func(q *qjv1.QuarksJob) bool { return q.Spec.Trigger.Strategy == qjv1.StrategyManual }},
		{"auto-errand", "auto-errand.yaml", func(q *qjv1.QuarksJob) bool { return q.Spec.Trigger.Strategy == qjv1.StrategyOnce }},
		{"auto-errand-updating", "auto-errand-updating.yaml", func(q *qjv1.QuarksJob) bool {
			return q.Spec.Trigger.Strategy == qjv1.StrategyOnce && q.Spec.UpdateOnConfigChange
		}},
		{"output", "output.yaml", func(q *qjv1.QuarksJob) bool { return q.Spec.Output != nil && len(q.Spec.Output.OutputMap) > 0 }},
		{"versioned-output", "versioned-output.yaml", func(q *qjv1.QuarksJob) bool {
			return anySecret(q, func(s qjv1.SecretOptions) bool { return s.Versioned })
		}},
		{"fan-out", "fan-out.yaml", func(q *qjv1.QuarksJob) bool {
			return anySecret(q, func(s qjv1.SecretOptions) bool { return s.PersistenceMethod == qjv1.PersistFanOut })
		}},
	} {
		ex, ok := all[tc.name]
		if !ok {
			t.Errorf("no example QuarksJob %s", tc.name)
			continue
		}
		if ex.file != tc.file {
			t.Errorf("QuarksJob %s is in %s, want %s", tc.name, ex.file, tc.file)
		}
		if !tc.shows(ex.qjob) {
			t.Errorf("example %s does not show what it is named for", tc.name)
		}
	}
}

func anySecret(q *qjv1.QuarksJob, match func(qjv1.SecretOptions) bool) bool {
	if q.Spec.Output == nil {
		return false
	}
	for _, files := range q.Spec.Output.OutputMap {
		for _, s := range files {
			if match(s) {
				return true
			}
		}
	}
	return false
}

// Each example must run quickly and visibly anywhere: busybox, short commands, no restarts, and
// every declared output file written by its container.
func TestExamplesRunAnywhere(t *testing.T) {
	for name, ex := range examples(t) {
		pod := ex.qjob.Spec.Template.Spec.Template.Spec
		if pod.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %q, want Never", name, pod.RestartPolicy)
		}
		containers := map[string]corev1.Container{}
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			containers[c.Name] = c
			if c.Image != "busybox" {
				t.Errorf("%s: container %s runs %q, want busybox", name, c.Name, c.Image)
			}
			if cmd := strings.Join(append(c.Command, c.Args...), " "); regexp.MustCompile(`sleep [0-9]{2,}`).MatchString(cmd) {
				t.Errorf("%s: container %s sleeps long: %s", name, c.Name, cmd)
			}
		}
		if ex.qjob.Spec.Output == nil {
			continue
		}
		for container, files := range ex.qjob.Spec.Output.OutputMap {
			c, ok := containers[container]
			if !ok {
				t.Errorf("%s: output of container %s, which the template lacks", name, container)
				continue
			}
			cmd := strings.Join(append(c.Command, c.Args...), " ")
			for file := range files {
				if !strings.Contains(cmd, "/mnt/quarks/"+file) {
					t.Errorf("%s: container %s does not write /mnt/quarks/%s: %s", name, container, file, cmd)
				}
			}
		}
	}
}

// Every example file starts with a comment that says what to expect.
func TestExamplesSayWhatToExpect(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("# ")) {
			t.Errorf("%s does not start with a comment saying what it shows", file)
		}
	}
}
