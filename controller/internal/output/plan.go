// Package output decides, from a run's output spec, the pod's container exit
// codes and an upload, which Secrets to write and which problems to report.
// It is pure: no cluster access, so every rule is unit-tested.
//
// The rules, per container declared in the output spec:
//
//   - exit code 0: every declared file must have been uploaded and be a flat
//     JSON object of strings (upload.ParseOutput); each becomes Secrets.
//   - non-zero exit code and writeOnFailure: the same, and a declared file
//     that is missing is reported as "exited with code N before writing".
//   - non-zero exit code without writeOnFailure: the container's output is not
//     expected. Nothing is written and that is not a failure of persistence:
//     the run fails (or is retried by the Job) because the container failed.
//   - exit code unknown (the kubelet has not reported it): blocking, the
//     endpoint asks the persister to retry.
//
// A problem is Blocking when declared output that had to be written was not;
// a Result with a blocking problem is not Persisted, and a run whose Job
// completed is then reported as failed. Non-blocking problems (an upload of an
// undeclared file, output skipped because its container failed) are reported
// but do not fail the run on their own.
package output

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// ContainerState is what the pod's status says about one container.
type ContainerState struct {
	// InPod is false when the pod has no container of that name.
	InPod bool
	// Terminated is true once the kubelet reported the container's exit.
	Terminated bool
	ExitCode   int32
	// RemoteID is the literal REMOTE_ID (qjv1.RemoteIDEnv) the run's Job
	// template gives the container; it becomes the Secrets' LabelRemoteID.
	RemoteID string
}

// Secret is one Secret to write. For a versioned Secret, Name is the base
// name; the writer allocates "<Name>-v<N>".
type Secret struct {
	Name      string
	Container string
	File      string
	Versioned bool
	// VersionsToKeep is the output's versionsToKeep, for versioned Secrets.
	VersionsToKeep int
	// Retain is true when a plain Secret outlives its QuarksJob
	// (output.deletePolicy Retain).
	Retain      bool
	Data        map[string][]byte
	Labels      map[string]string
	Annotations map[string]string
}

// Problem is something the user has to know about an upload.
type Problem struct {
	Container string
	File      string
	// Reason is a CamelCase word for Events.
	Reason  string
	Message string
	// Blocking means declared output that had to be persisted was not.
	Blocking bool
}

// Plan is what an upload leads to.
type Plan struct {
	Secrets  []Secret
	Problems []Problem

	maxSecrets int
}

// Blocked reports whether a blocking problem was found.
func (p Plan) Blocked() bool {
	for _, pr := range p.Problems {
		if pr.Blocking {
			return true
		}
	}
	return false
}

// ContainersAwaitingExit lists the declared containers whose exit code the
// kubelet has not reported yet, in the order of the spec's sorted names.
func ContainersAwaitingExit(spec *qjv1.Output, states map[string]ContainerState) []string {
	var waiting []string
	for _, container := range sortedKeys(spec.OutputMap) {
		if s := states[container]; s.InPod && !s.Terminated {
			waiting = append(waiting, container)
		}
	}
	return waiting
}

// AllExitedZero reports whether every declared container of the pod exited
// with code 0: the pod did its part of the run.
func AllExitedZero(spec *qjv1.Output, states map[string]ContainerState) bool {
	for container := range spec.OutputMap {
		if s := states[container]; !s.InPod || !s.Terminated || s.ExitCode != 0 {
			return false
		}
	}
	return true
}

// DefaultMaxSecrets is how many Secrets one upload may make by default: a
// fan-out of 5,000 keys fits twice.
const DefaultMaxSecrets = 10000

// Compute decides what an upload leads to. It never trusts the upload: every
// file is parsed again, and only files the spec declares are used. An
// upload that would make more than maxSecrets Secrets (fan-out: one per
// key) makes none of the file that crosses the bound, which is a blocking
// problem naming the file, its keys and the bound: what one upload costs
// the shared controller is bounded before the work is done.
func Compute(spec *qjv1.Output, req *upload.Request, states map[string]ContainerState, maxSecrets int) Plan {
	plan := Plan{maxSecrets: maxSecrets}
	if plan.maxSecrets <= 0 {
		plan.maxSecrets = DefaultMaxSecrets
	}
	spec = spec.WithoutReservedKeys()
	uploaded := index(req)

	for _, container := range sortedKeys(spec.OutputMap) {
		files := spec.OutputMap[container]
		state := states[container]
		switch {
		case !state.InPod:
			plan.problem(container, "", qjv1.EventContainerNotInPod, true,
				"container %q is declared in output.outputMap but the pod has no such container", container)
			continue
		case !state.Terminated:
			plan.problem(container, "", qjv1.EventExitCodeUnknown, true,
				"the kubelet has not reported the exit code of container %q", container)
			continue
		case state.ExitCode != 0 && !spec.WriteOnFailure:
			plan.problem(container, "", qjv1.EventOutputNotExpected, false,
				"container %q exited with code %d; its output %s not persisted because output.writeOnFailure is off",
				container, state.ExitCode, quotedList(sortedKeys(files)))
			continue
		}

		for _, fileName := range sortedKeys(files) {
			options := files[fileName]
			file, found := uploaded[container][fileName]
			switch {
			case !found && state.ExitCode != 0:
				plan.problem(container, fileName, qjv1.EventOutputMissing, true,
					"container %q exited with code %d before writing output file %q", container, state.ExitCode, fileName)
				continue
			case !found:
				plan.problem(container, fileName, qjv1.EventOutputMissing, true,
					"output file %q of container %q was not written (container exited with code 0)", fileName, container)
				continue
			case file.Error != "":
				// The persister words its errors to follow the file's
				// name, as its own log does ("is a symbolic link; ...").
				plan.problem(container, fileName, qjv1.EventPersisterReadError, true,
					"%s", upload.FileProblem(container, fileName, errors.New(file.Error)))
				continue
			}
			values, err := upload.ParseOutput(file.Content)
			if err != nil {
				plan.problem(container, fileName, qjv1.EventInvalidOutput, true, "%s", upload.FileProblem(container, fileName, err))
				continue
			}
			plan.addSecrets(spec, container, state.RemoteID, fileName, options, values)
		}
	}

	// Uploaded files the spec does not declare are never written.
	for _, c := range req.Containers {
		for _, f := range c.Files {
			if _, declared := spec.OutputMap[c.Name][f.Name]; !declared {
				plan.problem(c.Name, f.Name, qjv1.EventUndeclaredOutput, false,
					"ignored output file %q of container %q: the run's output spec does not declare it", f.Name, c.Name)
			}
		}
	}
	return plan
}

// addSecrets turns one valid output file into its Secrets.
func (p *Plan) addSecrets(spec *qjv1.Output, container, remoteID, fileName string, options qjv1.SecretOptions, values map[string]string) {
	base := Secret{
		Container:      container,
		File:           fileName,
		Versioned:      options.Versioned,
		VersionsToKeep: spec.OutputVersionsToKeep(),
		Retain:         spec.DeletePolicy != qjv1.OutputDelete,
		Labels:         secretLabels(spec, options, container, remoteID),
		Annotations:    maps.Clone(options.AdditionalSecretAnnotations),
	}
	if options.PersistenceMethod != qjv1.PersistFanOut {
		if len(p.Secrets) >= p.maxSecrets {
			p.problem(container, fileName, qjv1.EventTooManySecrets, true,
				"output file %q of container %q: the upload's other files make %d Secrets already, the most one upload may make (--output-max-secrets-per-upload)",
				fileName, container, len(p.Secrets))
			return
		}
		s := base
		s.Name = options.Name
		s.Data = toData(values)
		if msg := checkSecret(s); msg != "" {
			p.problem(container, fileName, qjv1.EventInvalidSecret, true, "output file %q of container %q: %s", fileName, container, msg)
			return
		}
		p.Secrets = append(p.Secrets, s)
		return
	}

	// fan-out: each top-level key becomes the Secret "<name>-<key>". Its data
	// is the key's value under the data key "value"; a value that is itself a
	// JSON-encoded flat object of strings becomes the Secret's data instead,
	// as the original QuarksJob did, so manifests written for it keep working.
	if planned := len(p.Secrets) + len(values); planned > p.maxSecrets {
		p.problem(container, fileName, qjv1.EventTooManySecrets, true,
			"output file %q of container %q (fan-out) has %d keys; with the %d Secrets of the upload's other files that makes %d Secrets, more than the %d one upload may make (--output-max-secrets-per-upload)",
			fileName, container, len(values), len(p.Secrets), planned, p.maxSecrets)
		return
	}
	var secrets []Secret
	for _, key := range sortedKeys(values) {
		s := base
		s.Name = options.Name + "-" + key
		s.Data = fanOutData(values[key])
		if msg := checkSecret(s); msg != "" {
			p.problem(container, fileName, qjv1.EventInvalidSecret, true,
				"output file %q of container %q (fan-out), key %q: %s", fileName, container, key, msg)
			return
		}
		s.Labels = maps.Clone(base.Labels)
		s.Annotations = maps.Clone(base.Annotations)
		secrets = append(secrets, s)
	}
	// A file is persisted whole or not at all.
	p.Secrets = append(p.Secrets, secrets...)
}

// versionSuffixRoom is what "-v<N>" may add to a versioned Secret's name.
const versionSuffixRoom = len("-v") + 10

// checkSecret returns why the Secret cannot be created, or "".
func checkSecret(s Secret) string {
	name := s.Name
	if s.Versioned {
		name += "-v1"
		if len(s.Name)+versionSuffixRoom > validation.DNS1123SubdomainMaxLength {
			return fmt.Sprintf("Secret name %q is too long for a versioned Secret (at most %d characters leave room for \"-v<N>\")",
				s.Name, validation.DNS1123SubdomainMaxLength-versionSuffixRoom)
		}
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Sprintf("%q is not a valid Secret name: %s", s.Name, strings.Join(errs, "; "))
	}
	for _, key := range sortedKeys(s.Data) {
		if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
			return fmt.Sprintf("key %q cannot be a Secret data key: %s", key, strings.Join(errs, "; "))
		}
	}
	// Admission checks the labels; this holds when the webhook was down.
	for _, key := range sortedKeys(s.Labels) {
		errs := append(validation.IsQualifiedName(key), validation.IsValidLabelValue(s.Labels[key])...)
		if len(errs) > 0 {
			return fmt.Sprintf("label %s=%q cannot be set: %s", key, s.Labels[key], strings.Join(errs, "; "))
		}
	}
	return ""
}

// FanOutValueKey is the data key of a fan-out Secret whose value is a plain string.
const FanOutValueKey = "value"

// fanOutData is the data of one fan-out Secret.
func fanOutData(value string) map[string][]byte {
	if trimmed := strings.TrimSpace(value); strings.HasPrefix(trimmed, "{") {
		if inner, err := upload.ParseOutput([]byte(trimmed)); err == nil {
			return toData(inner)
		}
	}
	return map[string][]byte{FanOutValueKey: []byte(value)}
}

func toData(values map[string]string) map[string][]byte {
	data := make(map[string][]byte, len(values))
	for k, v := range values {
		data[k] = []byte(v)
	}
	return data
}

// secretLabels are the output's labels, then the file's, then the container
// and remote-id labels. Values are used as given: admission rejects invalid
// ones (a REMOTE_ID that is no label value included).
func secretLabels(spec *qjv1.Output, options qjv1.SecretOptions, container, remoteID string) map[string]string {
	labels := map[string]string{}
	maps.Copy(labels, spec.SecretLabels)
	maps.Copy(labels, options.AdditionalSecretLabels)
	labels[qjv1.LabelPersistentSecretContainer] = container
	if remoteID != "" {
		labels[qjv1.LabelRemoteID] = remoteID
	}
	return labels
}

func (p *Plan) problem(container, file, reason string, blocking bool, format string, args ...any) {
	p.Problems = append(p.Problems, Problem{
		Container: container, File: file, Reason: reason, Blocking: blocking,
		Message: fmt.Sprintf(format, args...),
	})
}

// index maps container → file → uploaded file. Files listed as missing are
// absent from the index.
func index(req *upload.Request) map[string]map[string]upload.File {
	idx := map[string]map[string]upload.File{}
	if req == nil {
		return idx
	}
	for _, c := range req.Containers {
		if idx[c.Name] == nil {
			idx[c.Name] = map[string]upload.File{}
		}
		for _, f := range c.Files {
			idx[c.Name][f.Name] = f
		}
	}
	return idx
}

// ParseSpec reads the output spec snapshotted on a run's Job.
func ParseSpec(annotation string) (*qjv1.Output, error) {
	var spec qjv1.Output
	if err := json.Unmarshal([]byte(annotation), &spec); err != nil {
		return nil, fmt.Errorf("annotation %s is not a valid output spec: %w", qjv1.AnnotationOutputSpec, err)
	}
	return &spec, nil
}

func quotedList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	if len(names) == 1 {
		return "file " + quoted[0] + " is"
	}
	return "files " + strings.Join(quoted, ", ") + " are"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
