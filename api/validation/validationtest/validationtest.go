// Package validationtest holds QuarksJobs for the tests of the QuarksJob
// rules: one that passes them all, and a way to break each rule.
package validationtest

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// GoodQuarksJob returns a QuarksJob that passes every rule.
func GoodQuarksJob() *qjv1.QuarksJob {
	qj := &qjv1.QuarksJob{ObjectMeta: metav1.ObjectMeta{Name: "gen", Namespace: "ns"}}
	qj.Spec.Trigger.Strategy = qjv1.StrategyOnce
	podSpec := &qj.Spec.Template.Spec.Template.Spec
	podSpec.RestartPolicy = corev1.RestartPolicyNever
	podSpec.Containers = []corev1.Container{{Name: "gen", Image: "busybox",
		VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/mnt/config"}}}}
	podSpec.Volumes = []corev1.Volume{{Name: "config"}}
	qj.Spec.Output = &qjv1.Output{
		OutputType:   qjv1.OutputTypeJSON,
		SecretLabels: map[string]string{"app.kubernetes.io/name": "gen"},
		OutputMap: qjv1.OutputMap{"gen": qjv1.FilesToSecrets{
			"creds.json": {Name: "gen-creds", Versioned: true,
				AdditionalSecretLabels:      map[string]string{"quarks.cloudfoundry.org/deployment-name": "cf"},
				AdditionalSecretAnnotations: map[string]string{"example.com/note": "any value at all"}},
			"other.json": {Name: "gen-other"},
		}},
	}
	return qj
}

// SchemaErr holds, by case name, what the API server says instead when the
// CRD's schema refuses the object before the webhook sees it.
var SchemaErr = map[string][]string{
	"file name with a path":                            {"spec.output.outputMap[gen]", "an output file name must be a plain file name"},
	"file name dot-dot":                                {"spec.output.outputMap[gen]", "an output file name must be a plain file name"},
	"the operator's label in an output's secretLabels": {"spec.output.secretLabels", "are the operator's own"},
	"the operator's label in a file's secretLabels":    {"spec.output.outputMap[gen][other.json].secretLabels", "are the operator's own"},
	"the operator's annotation in secretAnnotations":   {"spec.output.outputMap[gen][other.json].secretAnnotations", "are the operator's own"},
}

// Cases holds, for each rule, a change that breaks it and the text the
// error must contain: the field path and the reason. The unit tests
// and the envtest suite both use them.
var Cases = []struct {
	Name    string
	Break   func(*qjv1.QuarksJob)
	WantErr []string
}{
	{"outputMap container missing from the template", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputMap["ghost"] = qjv1.FilesToSecrets{"a.json": {Name: "ghost-a"}}
	}, []string{"spec.output.outputMap[ghost]", "no container of this name"}},
	{"file name with a path", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputMap["gen"]["sub/a.json"] = qjv1.SecretOptions{Name: "gen-a"}
	}, []string{"spec.output.outputMap[gen][sub/a.json]", "plain file name"}},
	{"file name dot-dot", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputMap["gen"][".."] = qjv1.SecretOptions{Name: "gen-a"}
	}, []string{"spec.output.outputMap[gen][..]", "not a file name"}},
	{"secret name not a DNS subdomain", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputMap["gen"]["other.json"] = qjv1.SecretOptions{Name: "Gen_Other"}
	}, []string{"spec.output.outputMap[gen][other.json].name", "RFC 1123 subdomain"}},
	{"versioned secret name without room for -v<N>", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputMap["gen"]["creds.json"] = qjv1.SecretOptions{Name: strings.Repeat("a", 245), Versioned: true}
	}, []string{"spec.output.outputMap[gen][creds.json].name", "leaving room for the suffix -v<N>"}},
	{"two files into one secret", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputMap["gen"]["other.json"] = qjv1.SecretOptions{Name: "gen-creds"}
	}, []string{"spec.output.outputMap[gen][other.json].name", "Duplicate value", "spec.output.outputMap[gen][creds.json].name"}},
	{"invalid label key of an output", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.SecretLabels = map[string]string{"bad key!": "x"}
	}, []string{"spec.output.secretLabels", "bad key!"}},
	{"invalid label value of a file", func(qj *qjv1.QuarksJob) {
		s := qj.Spec.Output.OutputMap["gen"]["other.json"]
		s.AdditionalSecretLabels = map[string]string{"tier": "not a valid value"}
		qj.Spec.Output.OutputMap["gen"]["other.json"] = s
	}, []string{"spec.output.outputMap[gen][other.json].secretLabels", "not a valid value"}},
	{"invalid annotation key of a file", func(qj *qjv1.QuarksJob) {
		s := qj.Spec.Output.OutputMap["gen"]["other.json"]
		s.AdditionalSecretAnnotations = map[string]string{"/no-name": "x"}
		qj.Spec.Output.OutputMap["gen"]["other.json"] = s
	}, []string{"spec.output.outputMap[gen][other.json].secretAnnotations", "/no-name"}},
	{"the operator's label in an output's secretLabels", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.SecretLabels = map[string]string{qjv1.LabelSecretKind: qjv1.SecretKindVersioned}
	}, []string{"spec.output.secretLabels[quarks.cloudfoundry.org/secret-kind]", "is the operator's own"}},
	{"the operator's label in a file's secretLabels", func(qj *qjv1.QuarksJob) {
		s := qj.Spec.Output.OutputMap["gen"]["other.json"]
		s.AdditionalSecretLabels = map[string]string{qjv1.LabelSecretVersion: "9223372036854775807"}
		qj.Spec.Output.OutputMap["gen"]["other.json"] = s
	}, []string{"spec.output.outputMap[gen][other.json].secretLabels[quarks.cloudfoundry.org/secret-version]", "is the operator's own"}},
	{"the operator's annotation in secretAnnotations", func(qj *qjv1.QuarksJob) {
		s := qj.Spec.Output.OutputMap["gen"]["other.json"]
		s.AdditionalSecretAnnotations = map[string]string{qjv1.AnnotationOutputOf: "other"}
		qj.Spec.Output.OutputMap["gen"]["other.json"] = s
	}, []string{"spec.output.outputMap[gen][other.json].secretAnnotations[quarks.cloudfoundry.org/output-of]", "is the operator's own"}},
	{"restartPolicy Always", func(qj *qjv1.QuarksJob) {
		qj.Spec.Template.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}, []string{"spec.template.spec.template.spec.restartPolicy", "Always"}},
	{"user volume with the reserved prefix", func(qj *qjv1.QuarksJob) {
		qj.Spec.Template.Spec.Template.Spec.Volumes[0].Name = "quarks-job-config"
		qj.Spec.Template.Spec.Template.Spec.Containers[0].VolumeMounts[0].Name = "quarks-job-config"
	}, []string{"spec.template.spec.template.spec.volumes[0].name", "reserved"}},
	{"user mount at /mnt/quarks", func(qj *qjv1.QuarksJob) {
		qj.Spec.Template.Spec.Template.Spec.Containers[0].VolumeMounts[0].MountPath = "/mnt/quarks"
	}, []string{"spec.template.spec.template.spec.containers[0].volumeMounts[0].mountPath", "/mnt/quarks is reserved"}},
	{"init container mount below /mnt/quarks", func(qj *qjv1.QuarksJob) {
		qj.Spec.Template.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox",
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/mnt/quarks/gen"}}}}
	}, []string{"spec.template.spec.template.spec.initContainers[0].volumeMounts[0].mountPath"}},
	{"container with the persister's name", func(qj *qjv1.QuarksJob) {
		qj.Spec.Template.Spec.Template.Spec.Containers = append(qj.Spec.Template.Spec.Template.Spec.Containers,
			corev1.Container{Name: "output-persist", Image: "busybox"})
	}, []string{"spec.template.spec.template.spec.containers[1].name", "reserved for the output persister"}},
	{"REMOTE_ID that is no label value", func(qj *qjv1.QuarksJob) {
		c := &qj.Spec.Template.Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: qjv1.RemoteIDEnv, Value: "not a label value"})
	}, []string{"spec.template.spec.template.spec.containers[0].env[REMOTE_ID]", "quarks.cloudfoundry.org/remote-id"}},
	{"runStartTimeout not positive", func(qj *qjv1.QuarksJob) {
		qj.Spec.RunStartTimeout = &metav1.Duration{}
	}, []string{"spec.runStartTimeout", "positive duration"}},
	{"outputType other than json", func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputType = "yaml"
	}, []string{"spec.output.outputType", `supported values: "json"`}},
	{"spec of 800 KiB", func(qj *qjv1.QuarksJob) {
		c := &qj.Spec.Template.Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: "BLOB", Value: strings.Repeat("x", 800<<10)})
	}, []string{"spec: Too long: is ", "it may be at most 786432 bytes (768 KiB)"}},
	{"output spec of 300 KiB", func(qj *qjv1.QuarksJob) {
		for _, file := range []string{"creds.json", "other.json"} {
			s := qj.Spec.Output.OutputMap["gen"][file]
			s.AdditionalSecretAnnotations = map[string]string{"example.com/blob": strings.Repeat("x", 150<<10)}
			qj.Spec.Output.OutputMap["gen"][file] = s
		}
	}, []string{"spec.output: Too long: is ", "it may be at most 262144 bytes (256 KiB): the status keeps a copy of it"}},
}
