// Package validation checks and defaults QuarksJobs, for the rules the CRD
// schema cannot express. The webhook applies it at admission; the controller
// applies it again before it creates a run's Job, so a QuarksJob admitted
// while the webhook was down fails its run with the same message instead of
// creating pods that cannot work. Each problem names its field.
package validation

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// MaxVersionDigits is how many digits of N a versioned Secret's name
// "<name>-v<N>" has room for.
const MaxVersionDigits = 10

// MaxVersionedSecretNameLength is the longest name of a versioned output:
// "<name>-v<N>" must still be a valid Secret name.
const MaxVersionedSecretNameLength = validation.DNS1123SubdomainMaxLength - len("-v") - MaxVersionDigits

// MaxSpecBytes and MaxOutputSpecBytes bound a QuarksJob's spec, as JSON, so
// that the QuarksJob and its status fit in one etcd object (1.5 MiB unless
// etcd is told otherwise): the status keeps a copy of spec.output in the
// newest run's record, and up to 256 KiB of that run's upload records.
// Beyond them the controller could not record a run, and the run would
// neither start nor fail.
const (
	MaxSpecBytes       = 768 << 10
	MaxOutputSpecBytes = 256 << 10
)

var (
	specPath    = field.NewPath("spec")
	podSpecPath = specPath.Child("template", "spec", "template", "spec")
	outputPath  = specPath.Child("output")
)

// QuarksJob returns every problem of the QuarksJob the CRD schema does not
// catch.
func QuarksJob(qj *qjv1.QuarksJob) field.ErrorList {
	podSpec := &qj.Spec.Template.Spec.Template.Spec
	errs := restartPolicy(podSpec)
	errs = append(errs, reservedNames(podSpec)...)
	for _, f := range qj.Spec.Template.MisplacedFields() {
		if f.Conflict {
			errs = append(errs, field.Invalid(specPath.Child("template", f.Name), "", fmt.Sprintf(
				"differs from spec.template.spec.%s; set it in one place (spec.template.spec.%s)", f.Name, f.Name)))
		}
	}
	if d := qj.Spec.RunStartTimeout; d != nil && d.Duration <= 0 {
		errs = append(errs, field.Invalid(specPath.Child("runStartTimeout"), d.Duration.String(), "must be a positive duration, such as 90s or 10m"))
	}
	errs = append(errs, output(qj.Spec.Output, podSpec)...)
	errs = append(errs, size(&qj.Spec)...)
	return errs
}

// size refuses a spec too large to be recorded with its status.
func size(spec *qjv1.QuarksJobSpec) field.ErrorList {
	var errs field.ErrorList
	tooLong := func(path *field.Path, value any, limit int, why string) {
		encoded, err := json.Marshal(value)
		if err != nil || len(encoded) <= limit {
			return
		}
		errs = append(errs, &field.Error{Type: field.ErrorTypeTooLong, Field: path.String(), BadValue: len(encoded),
			Detail: fmt.Sprintf("is %d bytes of JSON; it may be at most %d bytes (%d KiB): %s", len(encoded), limit, limit>>10, why)})
	}
	if spec.Output != nil {
		tooLong(outputPath, spec.Output, MaxOutputSpecBytes, "the status keeps a copy of it for each run, and the QuarksJob with its status must fit in one etcd object (1.5 MiB)")
	}
	tooLong(specPath, spec, MaxSpecBytes, "the QuarksJob with its status must fit in one etcd object (1.5 MiB)")
	return errs
}

// Warnings are what a QuarksJob may hold but will not work as its author
// may think: reserved run labels and annotations in the template, which the
// controller drops (only it sets them, so a template cannot fake a run or
// its result).
func Warnings(qj *qjv1.QuarksJob) []string {
	var warnings []string
	for _, key := range qjv1.ReservedTemplateKeys(&qj.Spec.Template) {
		warnings = append(warnings, key+" is reserved for the controller and is dropped from the run's Job")
	}
	for _, f := range qj.Spec.Template.MisplacedFields() {
		if !f.Conflict {
			warnings = append(warnings, fmt.Sprintf("spec.template.%s is where the original QuarksJob took it; it is used as spec.template.spec.%s: move it there", f.Name, f.Name))
		}
	}
	if qj.Spec.Template.Spec.TTLSecondsAfterFinished != nil {
		warnings = append(warnings, "spec.template.spec.ttlSecondsAfterFinished is dropped: the controller deletes a run's Job itself once the run is recorded")
	}
	return warnings
}

func restartPolicy(podSpec *corev1.PodSpec) field.ErrorList {
	allowed := []corev1.RestartPolicy{corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure}
	switch {
	case podSpec.RestartPolicy == "":
		return field.ErrorList{field.Required(podSpecPath.Child("restartPolicy"), "must be Never or OnFailure")}
	case !slices.Contains(allowed, podSpec.RestartPolicy):
		return field.ErrorList{field.NotSupported(podSpecPath.Child("restartPolicy"), podSpec.RestartPolicy, allowed)}
	}
	return nil
}

// reservedNames rejects what would collide with the injected persister.
func reservedNames(podSpec *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	for i, v := range podSpec.Volumes {
		if strings.HasPrefix(v.Name, upload.ReservedVolumePrefix) {
			errs = append(errs, field.Invalid(podSpecPath.Child("volumes").Index(i).Child("name"), v.Name,
				fmt.Sprintf("the prefix %q is reserved for volumes of the output persister", upload.ReservedVolumePrefix)))
		}
	}
	for _, list := range []struct {
		name       string
		containers []corev1.Container
	}{{"initContainers", podSpec.InitContainers}, {"containers", podSpec.Containers}} {
		for i, c := range list.containers {
			containerPath := podSpecPath.Child(list.name).Index(i)
			if c.Name == upload.PersisterContainerName {
				errs = append(errs, field.Invalid(containerPath.Child("name"), c.Name, "is reserved for the output persister"))
			}
			for j, m := range c.VolumeMounts {
				mountPath := filepath.Clean(m.MountPath)
				if mountPath == upload.OutputRoot || strings.HasPrefix(mountPath, upload.OutputRoot+"/") {
					errs = append(errs, field.Invalid(containerPath.Child("volumeMounts").Index(j).Child("mountPath"), m.MountPath,
						fmt.Sprintf("%s is reserved: the output volume is mounted there", upload.OutputRoot)))
				}
			}
		}
	}
	return errs
}

func output(out *qjv1.Output, podSpec *corev1.PodSpec) field.ErrorList {
	if out == nil {
		return nil
	}
	var errs field.ErrorList
	if out.OutputType != "" && out.OutputType != qjv1.OutputTypeJSON {
		errs = append(errs, field.NotSupported(outputPath.Child("outputType"), out.OutputType, []qjv1.OutputType{qjv1.OutputTypeJSON}))
	}
	errs = append(errs, metav1validation.ValidateLabels(out.SecretLabels, outputPath.Child("secretLabels"))...)
	errs = append(errs, reservedKeys(out.SecretLabels, qjv1.ReservedSecretLabels, "label", outputPath.Child("secretLabels"))...)

	mapPath := outputPath.Child("outputMap")
	secretNames := map[string]*field.Path{}
	for _, container := range slices.Sorted(maps.Keys(out.OutputMap)) {
		containerPath := mapPath.Key(container)
		if i := slices.IndexFunc(podSpec.Containers, func(c corev1.Container) bool { return c.Name == container }); i < 0 {
			errs = append(errs, field.Invalid(containerPath, container,
				fmt.Sprintf("no container of this name in %s", podSpecPath.Child("containers"))))
		} else if id := qjv1.RemoteID(&podSpec.Containers[i]); id != "" {
			for _, msg := range validation.IsValidLabelValue(id) {
				errs = append(errs, field.Invalid(podSpecPath.Child("containers").Index(i).Child("env").Key(qjv1.RemoteIDEnv), id,
					"becomes the label "+qjv1.LabelRemoteID+" of the container's output Secrets: "+msg))
			}
		}
		files := out.OutputMap[container]
		for _, file := range slices.Sorted(maps.Keys(files)) {
			filePath := containerPath.Key(file)
			if err := upload.CheckFileName(file); err != nil {
				errs = append(errs, field.Invalid(filePath, file, err.Error()))
			}
			secret := files[file]
			errs = append(errs, secretName(secret, filePath.Child("name"))...)
			if first, ok := secretNames[secret.Name]; ok {
				errs = append(errs, field.Duplicate(filePath.Child("name"), fmt.Sprintf("%s (also the Secret of %s)", secret.Name, first)))
			} else {
				secretNames[secret.Name] = filePath.Child("name")
			}
			errs = append(errs, metav1validation.ValidateLabels(secret.AdditionalSecretLabels, filePath.Child("secretLabels"))...)
			errs = append(errs, apivalidation.ValidateAnnotations(secret.AdditionalSecretAnnotations, filePath.Child("secretAnnotations"))...)
			errs = append(errs, reservedKeys(secret.AdditionalSecretLabels, qjv1.ReservedSecretLabels, "label", filePath.Child("secretLabels"))...)
			errs = append(errs, reservedKeys(secret.AdditionalSecretAnnotations, qjv1.ReservedSecretAnnotations, "annotation", filePath.Child("secretAnnotations"))...)
		}
	}
	return errs
}

func secretName(secret qjv1.SecretOptions, namePath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(secret.Name) {
		errs = append(errs, field.Invalid(namePath, secret.Name, msg))
	}
	if secret.Versioned && len(secret.Name) > MaxVersionedSecretNameLength {
		errs = append(errs, field.Invalid(namePath, secret.Name, fmt.Sprintf(
			"must be no more than %d characters for a versioned output, leaving room for the suffix -v<N>", MaxVersionedSecretNameLength)))
	}
	return errs
}

// Default sets what a QuarksJob may leave out: outputType json, persistence
// method one-to-one, and restartPolicy Never (a Job's pods must not restart
// Always, and a Job has no default of its own).
func Default(qj *qjv1.QuarksJob) {
	podSpec := &qj.Spec.Template.Spec.Template.Spec
	if podSpec.RestartPolicy == "" {
		podSpec.RestartPolicy = corev1.RestartPolicyNever
	}
	out := qj.Spec.Output
	if out == nil {
		return
	}
	if out.OutputType == "" {
		out.OutputType = qjv1.OutputTypeJSON
	}
	for _, files := range out.OutputMap {
		for file, secret := range files {
			if secret.PersistenceMethod == "" {
				secret.PersistenceMethod = qjv1.PersistOneToOne
				files[file] = secret
			}
		}
	}
}

// reservedKeys refuses the keys the controller writes on output Secrets
// (qjv1.ReservedSecretLabels, qjv1.ReservedSecretAnnotations): a label such
// as secret-kind=versionedSecret would make an output look like a version of
// another QuarksJob's family. The CRD refuses them too.
func reservedKeys(m map[string]string, reserved []string, what string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, k := range reserved {
		if _, ok := m[k]; ok {
			errs = append(errs, field.Forbidden(path.Key(k), fmt.Sprintf("the %s %s is the operator's own: it writes it on output Secrets", what, k)))
		}
	}
	return errs
}
