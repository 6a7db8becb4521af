package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// manifestCase is a QuarksJob manifest with one thing wrong.
type manifestCase struct {
	// input says what is wrong, as the catalog names it.
	input string
	// edit breaks a good QuarksJob; raw breaks its JSON form, for what the
	// Go types cannot hold (unknown fields, wrong types).
	edit func(*qjv1.QuarksJob)
	raw  func(obj map[string]any)
	// want is what a user sees with the product installed.
	want []sighting
	// rule, for what the webhook refuses, is the rule's message; the
	// controller refuses the same when the webhook is down.
	rule string
	// withoutWebhook, when the controller does not see what the webhook
	// refuses, is what a user sees when the webhook is down.
	withoutWebhook []sighting
}

// invalidQuarksJob starts the API server's message for a QuarksJob "gen"
// that breaks a rule.
const invalidQuarksJob = `QuarksJob.quarks.cloudfoundry.org "gen" is invalid: `

// expected is what a user sees of the case with the webhook and without it
// (nil: the case is not run without the webhook).
func (c manifestCase) expected() (want, withoutWebhook []sighting) {
	if c.rule == "" {
		return c.want, c.withoutWebhook
	}
	want = []sighting{{atWebhook, `admission webhook "validate.quarksjobs.quarks.cloudfoundry.org" denied the request: ` + invalidQuarksJob + c.rule}}
	if c.withoutWebhook != nil {
		return want, c.withoutWebhook
	}
	return want, []sighting{{atNoWebhook, "the QuarksJob is invalid, no Job was created: " + invalidQuarksJob + c.rule}}
}

// schema is the API server's refusal of a QuarksJob its schema rejects.
func schema(message string) []sighting {
	return []sighting{{atSchema, invalidQuarksJob + message}}
}

// jobInvalid is the controller's verdict on a QuarksJob whose Job the API
// server refuses.
func jobInvalid(message string) []sighting {
	return []sighting{{atRunFailed, `the Job could not be created: Job.batch "gen-1" is invalid: ` + message}}
}

// started is a QuarksJob that runs.
var started = sighting{atStarted, "run 1 started Job gen-1 (trigger Once)"}

// goodQuarksJob is a one-off with output that passes every check.
func goodQuarksJob() *qjv1.QuarksJob {
	qj := &qjv1.QuarksJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "gen"},
	}
	qj.Spec.Trigger.Strategy = qjv1.StrategyOnce
	qj.Spec.Template.Spec.Template.Spec = corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "gen", Image: "busybox",
			Command: []string{"sh", "-c", `echo '{"user":"admin"}' > /mnt/quarks/creds.json`}}},
	}
	qj.Spec.Output = &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": qjv1.FilesToSecrets{"creds.json": {Name: "gen-creds"}}}}
	return qj
}

func podSpec(qj *qjv1.QuarksJob) *corev1.PodSpec { return &qj.Spec.Template.Spec.Template.Spec }

// editCreds changes the Secret the file creds.json becomes.
func editCreds(f func(*qjv1.SecretOptions)) func(*qjv1.QuarksJob) {
	return func(qj *qjv1.QuarksJob) {
		s := qj.Spec.Output.OutputMap["gen"]["creds.json"]
		f(&s)
		qj.Spec.Output.OutputMap["gen"]["creds.json"] = s
	}
}

func withFile(name string) func(*qjv1.QuarksJob) {
	return func(qj *qjv1.QuarksJob) {
		qj.Spec.Output.OutputMap["gen"][name] = qjv1.SecretOptions{Name: "gen-other"}
	}
}

func set(obj map[string]any, value any, path ...string) {
	for _, key := range path[:len(path)-1] {
		next, ok := obj[key].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[key] = next
		}
		obj = next
	}
	obj[path[len(path)-1]] = value
}

// podSpecOf is the pod spec in a QuarksJob's JSON form.
func podSpecOf(obj map[string]any) map[string]any {
	return obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
}

// container is the first container in a QuarksJob's JSON form.
func container(obj map[string]any) map[string]any {
	return podSpecOf(obj)["containers"].([]any)[0].(map[string]any)
}

var manifestCases = []manifestCase{
	{
		input: "`trigger.strategy: sometimes` (no strategy)",
		edit:  func(qj *qjv1.QuarksJob) { qj.Spec.Trigger.Strategy = "sometimes" },
		want:  schema(`[spec.trigger.strategy: Unsupported value: "sometimes": supported values: "manual", "now", "once", "done"…`),
	},
	{
		input: "no `trigger`",
		raw:   func(obj map[string]any) { delete(obj["spec"].(map[string]any), "trigger") },
		want:  schema(`[spec.trigger.strategy: Unsupported value: "": supported values: "manual", "now", "once", "done"…`),
	},
	{
		input: "`outputMap` for container `ghost`, which the template does not have",
		edit: func(qj *qjv1.QuarksJob) {
			qj.Spec.Output.OutputMap["ghost"] = qjv1.FilesToSecrets{"a.json": {Name: "ghost-a"}}
		},
		rule: `spec.output.outputMap[ghost]: Invalid value: "ghost": no container of this name in spec.template.spec.template.spec.containers`,
	},
	{
		input: "output file name `../../var/run/secrets/token` (path traversal)",
		edit:  withFile("../../var/run/secrets/token"),
		want:  schema(`spec.output.outputMap[gen]: Invalid value: an output file name must be a plain file name: not empty, not . or .., without / or \`),
	},
	{
		input: "output file name `sub/creds.json`",
		edit:  withFile("sub/creds.json"),
		want:  schema(`spec.output.outputMap[gen]: Invalid value: an output file name must be a plain file name: not empty, not . or .., without / or \`),
	},
	{
		input: "output file name `..`",
		edit:  withFile(".."),
		want:  schema(`spec.output.outputMap[gen]: Invalid value: an output file name must be a plain file name: not empty, not . or .., without / or \`),
	},
	{
		input: "output file name `creds\\json`",
		edit:  withFile(`creds\json`),
		want:  schema(`spec.output.outputMap[gen]: Invalid value: an output file name must be a plain file name: not empty, not . or .., without / or \`),
	},
	{
		input: "empty output file name",
		edit:  withFile(""),
		want:  schema(`spec.output.outputMap[gen]: Invalid value: an output file name must be a plain file name: not empty, not . or .., without / or \`),
	},
	{
		input: "`outputMap` with 65 containers",
		edit: func(qj *qjv1.QuarksJob) {
			for i := range 65 {
				qj.Spec.Output.OutputMap[fmt.Sprintf("c%d", i)] = qjv1.FilesToSecrets{"a.json": {Name: fmt.Sprintf("c%d-a", i)}}
			}
		},
		want: schema("[spec.output.outputMap: Too many: 66: must have at most 64 items…"),
	},
	{
		input: "Secret name `Gen_Creds`",
		edit:  editCreds(func(s *qjv1.SecretOptions) { s.Name = "Gen_Creds" }),
		rule:  `spec.output.outputMap[gen][creds.json].name: Invalid value: "Gen_Creds": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character…`,
	},
	{
		input: "empty Secret name",
		edit:  editCreds(func(s *qjv1.SecretOptions) { s.Name = "" }),
		want:  schema(`spec.output.outputMap.gen.creds.json.name: Invalid value: "": spec.output.outputMap.gen.creds.json.name in body should be at least 1 chars long`),
	},
	{
		input: "versioned Secret name of 245 characters",
		edit:  editCreds(func(s *qjv1.SecretOptions) { s.Name, s.Versioned = strings.Repeat("a", 245), true }),
		rule: `spec.output.outputMap[gen][creds.json].name: Invalid value: "` + strings.Repeat("a", 245) +
			`": must be no more than 241 characters for a versioned output, leaving room for the suffix -v<N>`,
	},
	{
		input: "two files into one Secret",
		edit: func(qj *qjv1.QuarksJob) {
			qj.Spec.Output.OutputMap["gen"]["other.json"] = qjv1.SecretOptions{Name: "gen-creds"}
		},
		rule: `spec.output.outputMap[gen][other.json].name: Duplicate value: "gen-creds (also the Secret of spec.output.outputMap[gen][creds.json].name)"`,
	},
	{
		input: "`persistencemethod: many`",
		edit:  editCreds(func(s *qjv1.SecretOptions) { s.PersistenceMethod = "many" }),
		want:  schema(`[spec.output.outputMap.gen.creds.json.persistencemethod: Unsupported value: "many": supported values: "one-to-one", "fan-out"…`),
	},
	{
		input: "`output.secretLabels` value `not a label value`",
		edit:  func(qj *qjv1.QuarksJob) { qj.Spec.Output.SecretLabels = map[string]string{"tier": "not a label value"} },
		rule:  `spec.output.secretLabels: Invalid value: "not a label value": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character…`,
	},
	{
		input: "`output.secretLabels` key `bad key!`",
		edit:  func(qj *qjv1.QuarksJob) { qj.Spec.Output.SecretLabels = map[string]string{"bad key!": "x"} },
		rule:  `spec.output.secretLabels: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character…`,
	},
	{
		input: "a file's `secretLabels` value of 64 characters",
		edit: editCreds(func(s *qjv1.SecretOptions) {
			s.AdditionalSecretLabels = map[string]string{"tier": strings.Repeat("x", 64)}
		}),
		rule: `spec.output.outputMap[gen][creds.json].secretLabels: Invalid value: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": must be no more than 63 bytes`,
	},
	{
		input: "a file's `secretAnnotations` key `/no-name`",
		edit: editCreds(func(s *qjv1.SecretOptions) {
			s.AdditionalSecretAnnotations = map[string]string{"/no-name": "x"}
		}),
		rule: `spec.output.outputMap[gen][creds.json].secretAnnotations: Invalid value: "/no-name": prefix part must be non-empty`,
	},
	{
		input: "`REMOTE_ID` that is no label value",
		edit: func(qj *qjv1.QuarksJob) {
			c := &podSpec(qj).Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: qjv1.RemoteIDEnv, Value: "not a label value"})
		},
		rule: `spec.template.spec.template.spec.containers[0].env[REMOTE_ID]: Invalid value: "not a label value": becomes the label quarks.cloudfoundry.org/remote-id of the container's output Secrets: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character…`,
	},
	{
		input: "`outputType: yaml`",
		edit:  func(qj *qjv1.QuarksJob) { qj.Spec.Output.OutputType = "yaml" },
		want:  schema(`[spec.output.outputType: Unsupported value: "yaml": supported values: "json"…`),
	},
	{
		input: "`versionsToKeep: 0`",
		edit:  func(qj *qjv1.QuarksJob) { qj.Spec.Output.VersionsToKeep = ptr.To[int32](0) },
		want:  schema("spec.output.versionsToKeep: Invalid value: 0: spec.output.versionsToKeep in body should be greater than or equal to 1"),
	},
	{
		input: "a volume mount at `/mnt/quarks` (reserved)",
		edit: func(qj *qjv1.QuarksJob) {
			ps := podSpec(qj)
			ps.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			ps.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/mnt/quarks"}}
		},
		rule: `spec.template.spec.template.spec.containers[0].volumeMounts[0].mountPath: Invalid value: "/mnt/quarks": /mnt/quarks is reserved: the output volume is mounted there`,
	},
	{
		input: "an init container's mount below `/mnt/quarks`",
		edit: func(qj *qjv1.QuarksJob) {
			ps := podSpec(qj)
			ps.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			ps.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/mnt/quarks/gen/"}}}}
		},
		rule: `spec.template.spec.template.spec.initContainers[0].volumeMounts[0].mountPath: Invalid value: "/mnt/quarks/gen/": /mnt/quarks is reserved: the output volume is mounted there`,
	},
	{
		input: "a volume named `quarks-job-config` (reserved prefix)",
		edit: func(qj *qjv1.QuarksJob) {
			ps := podSpec(qj)
			ps.Volumes = []corev1.Volume{{Name: "quarks-job-config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			ps.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "quarks-job-config", MountPath: "/config"}}
		},
		rule: `spec.template.spec.template.spec.volumes[0].name: Invalid value: "quarks-job-config": the prefix "quarks-job-" is reserved for volumes of the output persister`,
	},
	{
		input: "a container named `output-persist` (the persister's)",
		edit: func(qj *qjv1.QuarksJob) {
			ps := podSpec(qj)
			ps.Containers = append(ps.Containers, corev1.Container{Name: "output-persist", Image: "busybox"})
		},
		rule: `spec.template.spec.template.spec.containers[1].name: Invalid value: "output-persist": is reserved for the output persister`,
	},
	{
		input: "`restartPolicy: Always`",
		edit:  func(qj *qjv1.QuarksJob) { podSpec(qj).RestartPolicy = corev1.RestartPolicyAlways },
		want:  schema(`[spec.template.spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "Never", "OnFailure"…`),
	},
	{
		input: "no containers",
		raw:   func(obj map[string]any) { delete(podSpecOf(obj), "containers") },
		// The defaulting webhook writes the missing list as null.
		want: schema(`[spec.template.spec.template.spec.containers: Invalid value: "null": spec.template.spec.template.spec.containers in body must be of type array: "null"…`),
	},
	{
		input: "a container without `image`",
		edit:  func(qj *qjv1.QuarksJob) { podSpec(qj).Containers[0].Image = "" },
		want:  jobInvalid("spec.template.spec.containers[0].image: Required value"),
	},
	{
		input: "a container named `Sidecar` (no DNS label)",
		edit: func(qj *qjv1.QuarksJob) {
			ps := podSpec(qj)
			ps.Containers = append(ps.Containers, corev1.Container{Name: "Sidecar", Image: "busybox"})
		},
		want: jobInvalid(`spec.template.spec.containers[1].name: Invalid value: "Sidecar": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character…`),
	},
	{
		input: "pod template label value `not a label`",
		edit: func(qj *qjv1.QuarksJob) {
			qj.Spec.Template.Spec.Template.Labels = map[string]string{"tier": "not a label"}
		},
		want: jobInvalid(`spec.template.labels: Invalid value: "not a label": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character…`),
	},
	{
		input: "`parallelism: -1`",
		edit:  func(qj *qjv1.QuarksJob) { qj.Spec.Template.Spec.Parallelism = ptr.To[int32](-1) },
		want:  jobInvalid("spec.parallelism: Invalid value: -1: must be greater than or equal to 0"),
	},
	{
		input: "`backoffLimit` under `template` and under `template.spec`, different",
		edit: func(qj *qjv1.QuarksJob) {
			qj.Spec.Template.BackoffLimit, qj.Spec.Template.Spec.BackoffLimit = ptr.To[int32](2), ptr.To[int32](3)
		},
		rule: `spec.template.backoffLimit: Invalid value: "": differs from spec.template.spec.backoffLimit; set it in one place (spec.template.spec.backoffLimit)`,
	},
	{
		input: "`runStartTimeout: 0s`",
		edit:  func(qj *qjv1.QuarksJob) { qj.Spec.RunStartTimeout = &metav1.Duration{} },
		want:  schema(`spec.runStartTimeout: Invalid value: "0s": must be a positive duration, such as 90s or 10m`),
	},
	{
		input: "`runStartTimeout: soon` (no duration)",
		raw:   func(obj map[string]any) { set(obj, "soon", "spec", "runStartTimeout") },
		want:  schema(`spec.runStartTimeout: Invalid value: "soon": must be a positive duration, such as 90s or 10m`),
	},
	{
		input: "`updateOnConfigChange: \"yes\"` (a string for a boolean)",
		raw:   func(obj map[string]any) { set(obj, "yes", "spec", "updateOnConfigChange") },
		want:  schema(`[spec.updateOnConfigChange: Invalid value: "string": spec.updateOnConfigChange in body must be of type boolean: "string"…`),
	},
	{
		input: "`containerPort: 99999999999` (beyond int32)",
		raw: func(obj map[string]any) {
			container(obj)["ports"] = []any{map[string]any{"containerPort": int64(99999999999)}}
		},
		want: schema(`<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.template.spec.template.spec.containers[0].ports[0].containerPort`),
	},
	{
		input: "unknown field `spec.retries`",
		raw:   func(obj map[string]any) { set(obj, int64(3), "spec", "retries") },
		want:  []sighting{{atWarning, `unknown field "spec.retries"`}, started},
	},
	{
		input: "unknown field `imagePullSecret` in a container",
		raw:   func(obj map[string]any) { container(obj)["imagePullSecret"] = "registry" },
		want:  []sighting{{atWarning, `unknown field "spec.template.spec.template.spec.containers[0].imagePullSecret"`}, started},
	},
	{
		input: "reserved run label `quarks.cloudfoundry.org/run` in the Job template",
		edit: func(qj *qjv1.QuarksJob) {
			qj.Spec.Template.Labels = map[string]string{qjv1.LabelRun: "7"}
		},
		want: []sighting{{atWarning, "spec.template.metadata.labels quarks.cloudfoundry.org/run is reserved for the controller and is dropped from the run's Job"}, started},
	},
	{
		input: "a reference to Secret `db-creds`, which does not exist",
		edit: func(qj *qjv1.QuarksJob) {
			c := &podSpec(qj).Containers[0]
			c.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db-creds"}}}}
		},
		want: []sighting{{atWaiting, "the run starts when these exist: Secret db-creds"}},
	},
	{
		input: "an `outputMap` of 16,384 files (64 containers, 256 files each)",
		edit: func(qj *qjv1.QuarksJob) {
			ps := podSpec(qj)
			qj.Spec.Output.OutputMap = qjv1.OutputMap{}
			for i := range 64 {
				name := fmt.Sprintf("c%d", i)
				ps.Containers = append(ps.Containers, corev1.Container{Name: name, Image: "busybox"})
				files := qjv1.FilesToSecrets{}
				for j := range 256 {
					file := fmt.Sprintf("f%03d.json", j)
					files[file] = qjv1.SecretOptions{Name: fmt.Sprintf("%s-%s", name, strings.TrimSuffix(file, ".json"))}
				}
				qj.Spec.Output.OutputMap[name] = files
			}
		},
		rule: "[spec.output: Too long: is 1062980 bytes of JSON; it may be at most 262144 bytes (256 KiB): the status keeps a copy of it for each run, and the…",
	},
	{
		input: "a template of 1.4 MiB",
		edit: func(qj *qjv1.QuarksJob) {
			c := &podSpec(qj).Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "BLOB", Value: strings.Repeat("x", 1400<<10)})
		},
		rule: "spec: Too long: is 1434070 bytes of JSON; it may be at most 786432 bytes (768 KiB): the QuarksJob with its status must fit in one etcd object (1.5 MiB)",
	},
	{
		input: "a template of 1.6 MiB",
		edit: func(qj *qjv1.QuarksJob) {
			c := &podSpec(qj).Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "BLOB", Value: strings.Repeat("x", 1600<<10)})
		},
		rule: "spec: Too long: is 1638870 bytes of JSON; it may be at most 786432 bytes (768 KiB): the QuarksJob with its status must fit in one etcd object (1.5 MiB)",
		// Without the webhook, etcd refuses it: nothing is stored.
		withoutWebhook: []sighting{{atSize, "etcdserver: request is too large"}},
	},
}

// manifest builds the case's QuarksJob in its JSON form.
func (c manifestCase) manifest(t *testing.T, namespace string) *unstructured.Unstructured {
	qj := goodQuarksJob()
	qj.Namespace = namespace
	if c.edit != nil {
		c.edit(qj)
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(qj)
	if err != nil {
		t.Fatal(err)
	}
	delete(obj, "status")
	if c.raw != nil {
		c.raw(obj)
	}
	return &unstructured.Unstructured{Object: obj}
}

// warnings collects the warnings the API server sends with its answers.
type warnings struct {
	mu   sync.Mutex
	text []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text = append(w.text, text)
}

// observe creates the case's QuarksJob as a user would and returns what the
// user sees: the API server's refusal or warnings, else what the controller
// makes of it.
func (c manifestCase) observe(t *testing.T) []sighting {
	ns := newNamespace(t)
	heard := &warnings{}
	cfg := rest.CopyConfig(restConfig)
	cfg.WarningHandler = heard
	user, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Bounded, so that a case that hangs fails; generous, for a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	err = user.Create(ctx, c.manifest(t, ns))
	var seen []sighting
	if err != nil {
		return append(seen, sighting{refusedBy(err), err.Error()})
	}
	if len(heard.text) > 0 {
		sort.Strings(heard.text)
		seen = append(seen, sighting{atWarning, strings.Join(heard.text, "; ")})
	}
	return append(seen, controllerVerdict(ctx, t, ns)...)
}

func refusedBy(err error) string {
	switch {
	case strings.Contains(err.Error(), `admission webhook "validate.quarksjobs.`):
		return atWebhook
	case apierrors.IsRequestEntityTooLargeError(err) || strings.Contains(err.Error(), "request is too large") || strings.Contains(err.Error(), "larger than max"):
		return atSize
	default:
		return atSchema
	}
}

// controllerVerdict waits for the controller's first word on the QuarksJob
// "gen" in ns: a run that started, failed or is held.
func controllerVerdict(ctx context.Context, t *testing.T, ns string) []sighting {
	t.Helper()
	var seen []sighting
	// Some cases' QuarksJobs are over a MiB: each read costs the API server.
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		qj := &qjv1.QuarksJob{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gen"}, qj); err != nil {
			return false, err
		}
		if held := meta.FindStatusCondition(qj.Status.Conditions, qjv1.ConditionWaitingForReferences); held != nil && held.Status == metav1.ConditionTrue {
			seen = []sighting{{atWaiting, held.Message}}
			return true, nil
		}
		last := qj.Status.LastRun
		if last == nil {
			return false, nil
		}
		switch last.Result {
		case qjv1.RunRunning:
			note, err := eventNote(ctx, ns, "RunStarted")
			seen = []sighting{{atStarted, note}}
			return err == nil, nil
		case qjv1.RunFailed:
			done := meta.FindStatusCondition(qj.Status.Conditions, qjv1.ConditionLastRunSucceeded)
			if done == nil || done.Status != metav1.ConditionFalse {
				return false, nil
			}
			note, err := eventNote(ctx, ns, "RunFailed")
			if err != nil {
				return false, nil //nolint:nilerr // the Event is recorded after the status
			}
			if want := fmt.Sprintf("run %d failed: %s", last.Number, done.Message); note != want {
				return false, fmt.Errorf("the RunFailed Event says %q; want %q", note, want)
			}
			seen = []sighting{{atRunFailed, done.Message}}
			return true, nil
		default:
			return false, fmt.Errorf("run %d %s: %s", last.Number, last.Result, last.Message)
		}
	})
	if err != nil {
		t.Fatalf("waiting for the controller's verdict on QuarksJob %s/gen: %v (seen so far: %v)", ns, err, seen)
	}
	return seen
}

// eventNote returns the note of the Event of the reason regarding the
// QuarksJob "gen" in ns.
func eventNote(ctx context.Context, ns, reason string) (string, error) {
	list := &eventsv1.EventList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		return "", err
	}
	for _, e := range list.Items {
		if e.Regarding.Name == "gen" && e.Reason == reason {
			return e.Note, nil
		}
	}
	return "", errors.New("no Event " + reason)
}

// newNamespace creates a namespace for one case, with the ServiceAccount
// its pods run as (envtest has no controller that would create it).
func newNamespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "catalog-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns.Name}}); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}
