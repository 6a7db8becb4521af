package v1alpha1

import (
	"math"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"code.cloudfoundry.org/quarks-job/api/text"
)

// Strategy says when a QuarksJob runs.
// +kubebuilder:validation:Enum=manual;now;once;done
type Strategy string

const (
	// StrategyManual is an errand at rest: nothing runs until a user sets "now".
	StrategyManual Strategy = "manual"
	// StrategyNow runs the errand once; the controller sets the strategy back to "manual".
	StrategyNow Strategy = "now"
	// StrategyOnce runs the job once (at creation, or when set again); the
	// controller then sets the strategy to "done".
	StrategyOnce Strategy = "once"
	// StrategyDone is a one-off that has been started. Only a change of the
	// referenced configuration (with updateOnConfigChange) runs it again.
	StrategyDone Strategy = "done"
)

// PersistenceMethod says how an output file becomes Secrets.
// +kubebuilder:validation:Enum=one-to-one;fan-out
type PersistenceMethod string

const (
	// PersistOneToOne writes the whole file into one Secret named after the output.
	PersistOneToOne PersistenceMethod = "one-to-one"
	// PersistFanOut writes each top-level key of the file into its own Secret,
	// named "<name>-<key>", holding the key's value under the key "value".
	PersistFanOut PersistenceMethod = "fan-out"
)

// OutputDeletePolicy says what happens to a QuarksJob's plain output Secrets
// when the QuarksJob is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type OutputDeletePolicy string

const (
	// OutputRetain leaves plain output Secrets when the QuarksJob is
	// deleted, as the original QuarksJob did; a QuarksJob of the same name
	// created again writes them again.
	OutputRetain OutputDeletePolicy = "Retain"
	// OutputDelete has Kubernetes delete plain output Secrets with the
	// QuarksJob (they are controlled by it).
	OutputDelete OutputDeletePolicy = "Delete"
)

// OutputType is the format of output files.
// +kubebuilder:validation:Enum=json
type OutputType string

// OutputTypeJSON is the only output format: a flat JSON object of string values.
const OutputTypeJSON OutputType = "json"

// Trigger decides when the QuarksJob runs.
type Trigger struct {
	// strategy is manual, now, once or done. See the Strategy constants.
	// +required
	Strategy Strategy `json:"strategy"`
}

// SecretOptions says which Secret an output file becomes.
type SecretOptions struct {
	// name of the Secret. With versioned, each run writes "<name>-v<N>"; with
	// fan-out, each key becomes "<name>-<key>".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// secretLabels are added to the Secret, besides the output's secretLabels.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!['quarks.cloudfoundry.org/qjob-name', 'quarks.cloudfoundry.org/run', 'quarks.cloudfoundry.org/container-name', 'quarks.cloudfoundry.org/remote-id', 'quarks.cloudfoundry.org/secret-kind', 'quarks.cloudfoundry.org/secret-version'].exists(k, k in self)",message="the labels quarks.cloudfoundry.org/qjob-name, run, container-name, remote-id, secret-kind and secret-version are the operator's own: it writes them on output Secrets"
	AdditionalSecretLabels map[string]string `json:"secretLabels,omitempty"`

	// secretAnnotations are added to the Secret.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!['quarks.cloudfoundry.org/output-of', 'quarks.cloudfoundry.org/run', 'quarks.cloudfoundry.org/output-pod-uid', 'quarks.cloudfoundry.org/source-description'].exists(k, k in self)",message="the annotations quarks.cloudfoundry.org/output-of, run, output-pod-uid and source-description are the operator's own: it writes them on output Secrets"
	AdditionalSecretAnnotations map[string]string `json:"secretAnnotations,omitempty"`

	// versioned makes each run create an immutable Secret "<name>-v<N>".
	// +optional
	Versioned bool `json:"versioned,omitempty"`

	// persistencemethod is one-to-one (default) or fan-out.
	// +optional
	PersistenceMethod PersistenceMethod `json:"persistencemethod,omitempty"`
}

// FilesToSecrets maps output file names to the Secret each becomes. A file
// name is a plain name in the container's output directory.
// +kubebuilder:validation:MaxProperties=256
// +kubebuilder:validation:XValidation:rule="self.all(f, size(f) > 0 && f != '.' && f != '..' && !f.contains('/') && !f.contains('\\\\'))",message="an output file name must be a plain file name: not empty, not . or .., without / or \\"
type FilesToSecrets map[string]SecretOptions

// OutputMap maps container names to their output files.
// +kubebuilder:validation:MaxProperties=64
type OutputMap map[string]FilesToSecrets

// Output says which files the job's containers write into /mnt/quarks and
// which Secrets they become.
type Output struct {
	// outputMap maps container name → file name → Secret.
	// +required
	OutputMap OutputMap `json:"outputMap"`

	// outputType is the format of the files; only json is supported.
	// +optional
	// +kubebuilder:default=json
	OutputType OutputType `json:"outputType,omitempty"`

	// secretLabels are added to every output Secret.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!['quarks.cloudfoundry.org/qjob-name', 'quarks.cloudfoundry.org/run', 'quarks.cloudfoundry.org/container-name', 'quarks.cloudfoundry.org/remote-id', 'quarks.cloudfoundry.org/secret-kind', 'quarks.cloudfoundry.org/secret-version'].exists(k, k in self)",message="the labels quarks.cloudfoundry.org/qjob-name, run, container-name, remote-id, secret-kind and secret-version are the operator's own: it writes them on output Secrets"
	SecretLabels map[string]string `json:"secretLabels,omitempty"`

	// writeOnFailure persists the output of containers that exited with a
	// non-zero code too.
	// +optional
	WriteOnFailure bool `json:"writeOnFailure,omitempty"`

	// deletePolicy says whether plain output Secrets outlive the QuarksJob:
	// Retain (the default, as the original QuarksJob) or Delete. Versioned
	// Secrets are always deleted with it.
	// +optional
	// +kubebuilder:default=Retain
	DeletePolicy OutputDeletePolicy `json:"deletePolicy,omitempty"`

	// versionsToKeep is how many versions of each versioned Secret are kept;
	// older ones are deleted. The newest is never deleted.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=5
	VersionsToKeep *int32 `json:"versionsToKeep,omitempty"`
}

// JobTemplate is the Job a run creates, as a batch/v1 JobTemplateSpec:
// metadata and spec. The original QuarksJob also accepted some of the Job's
// spec fields directly under template (its examples put backoffLimit there);
// they are accepted here too, with the same meaning: a run's Job uses each as
// its spec's field when spec leaves that unset. Admission warns and names
// where each belongs, and refuses one set in both places with different
// values.
type JobTemplate struct {
	// metadata of the Job: its labels and annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec of the Job.
	// +required
	Spec batchv1.JobSpec `json:"spec"`

	// backoffLimit as the original QuarksJob took it; belongs in spec.backoffLimit.
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`
	// activeDeadlineSeconds as the original QuarksJob took it; belongs in spec.activeDeadlineSeconds.
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
	// parallelism as the original QuarksJob took it; belongs in spec.parallelism.
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`
	// completions as the original QuarksJob took it; belongs in spec.completions.
	// +optional
	Completions *int32 `json:"completions,omitempty"`
	// ttlSecondsAfterFinished as the original QuarksJob took it; the
	// controller drops it as it drops spec.ttlSecondsAfterFinished.
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// MisplacedField is a Job spec field set directly under a QuarksJob's
// template, where the original QuarksJob took it.
type MisplacedField struct {
	// Name of the field, as under spec.
	Name string
	// Conflict is true when spec sets the field too, to another value.
	Conflict bool
}

// MisplacedFields lists the Job spec fields set directly under the template.
func (t *JobTemplate) MisplacedFields() []MisplacedField {
	var found []MisplacedField
	add := func(name string, set, conflict bool) {
		if set {
			found = append(found, MisplacedField{Name: name, Conflict: conflict})
		}
	}
	add("backoffLimit", t.BackoffLimit != nil, conflicts(t.BackoffLimit, t.Spec.BackoffLimit))
	add("activeDeadlineSeconds", t.ActiveDeadlineSeconds != nil, conflicts(t.ActiveDeadlineSeconds, t.Spec.ActiveDeadlineSeconds))
	add("parallelism", t.Parallelism != nil, conflicts(t.Parallelism, t.Spec.Parallelism))
	add("completions", t.Completions != nil, conflicts(t.Completions, t.Spec.Completions))
	add("ttlSecondsAfterFinished", t.TTLSecondsAfterFinished != nil, conflicts(t.TTLSecondsAfterFinished, t.Spec.TTLSecondsAfterFinished))
	return found
}

// JobSpec is the spec a run's Job gets: spec, with each field set directly
// under the template used where spec leaves it unset.
func (t *JobTemplate) JobSpec() batchv1.JobSpec {
	spec := *t.Spec.DeepCopy()
	spec.BackoffLimit = firstSet(spec.BackoffLimit, t.BackoffLimit)
	spec.ActiveDeadlineSeconds = firstSet(spec.ActiveDeadlineSeconds, t.ActiveDeadlineSeconds)
	spec.Parallelism = firstSet(spec.Parallelism, t.Parallelism)
	spec.Completions = firstSet(spec.Completions, t.Completions)
	spec.TTLSecondsAfterFinished = firstSet(spec.TTLSecondsAfterFinished, t.TTLSecondsAfterFinished)
	return spec
}

func conflicts[T comparable](misplaced, inSpec *T) bool {
	return misplaced != nil && inSpec != nil && *misplaced != *inSpec
}

func firstSet[T any](values ...*T) *T {
	for _, v := range values {
		if v != nil {
			c := *v
			return &c
		}
	}
	return nil
}

// No marker reaches into the Job template's type, so `make generate` adds
// the enum that allows the pods' restartPolicy only Never or OnFailure to the
// CRD with tools/cmd/crdenum.

// QuarksJobSpec is the desired state of a QuarksJob.
type QuarksJobSpec struct {
	// output says which files of the job become Secrets.
	// +optional
	Output *Output `json:"output,omitempty"`

	// trigger says when the job runs.
	// +required
	Trigger Trigger `json:"trigger"`

	// template is the Job each run creates. Its labels and annotations are
	// carried to the Job.
	// +required
	Template JobTemplate `json:"template"`

	// updateOnConfigChange runs a one-off again when the data of a ConfigMap
	// or Secret its pods reference changes.
	// +optional
	UpdateOnConfigChange bool `json:"updateOnConfigChange,omitempty"`

	// runStartTimeout is how long a run's pods may take to start (be
	// created, scheduled, pull their images) before the run fails with the
	// reason the API gives. Unset, the controller's --run-start-timeout
	// (5m unless the chart's controller.runStartTimeout says otherwise).
	// The schema checks the format: a value the controller cannot decode
	// would stop it from reading any QuarksJob.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')",message="must be a positive duration, such as 90s or 10m"
	RunStartTimeout *metav1.Duration `json:"runStartTimeout,omitempty"`
}

// RunTrigger is what started a run.
// +kubebuilder:validation:Enum=Now;Once;ConfigChange
type RunTrigger string

const (
	// RunTriggerNow is a user setting the strategy to "now".
	RunTriggerNow RunTrigger = "Now"
	// RunTriggerOnce is the strategy "once".
	RunTriggerOnce RunTrigger = "Once"
	// RunTriggerConfigChange is a change of referenced configuration.
	RunTriggerConfigChange RunTrigger = "ConfigChange"
)

// RunResult is the state of a run.
// +kubebuilder:validation:Enum=Running;Succeeded;Failed
type RunResult string

const (
	// RunRunning means the run's Job is active.
	RunRunning RunResult = "Running"
	// RunSucceeded means the Job completed and its declared output was persisted.
	RunSucceeded RunResult = "Succeeded"
	// RunFailed means the Job failed, was deleted, or its output was not persisted.
	RunFailed RunResult = "Failed"
)

// Run is the record of one run.
type Run struct {
	// number of the run; runs are numbered from 1.
	// +required
	Number int64 `json:"number"`

	// jobName is the name of the run's Job.
	// +required
	JobName string `json:"jobName"`

	// trigger is what started the run.
	// +required
	Trigger RunTrigger `json:"trigger"`

	// startTime is when the Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the run finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// result is Running, Succeeded or Failed.
	// +required
	Result RunResult `json:"result"`

	// message explains the result.
	// +optional
	Message string `json:"message,omitempty"`

	// inputsHash is the hash of the referenced configuration the run saw.
	// +optional
	InputsHash string `json:"inputsHash,omitempty"`

	// jobUID is the UID of the run's Job, recorded by the controller when it
	// created the Job. Only a Job with this UID, and only its pods, count
	// as the run: labels, names and ownerReferences on a Job or pod are
	// claims of whoever created it.
	// +optional
	JobUID types.UID `json:"jobUID,omitempty"`

	// output is the output spec the run writes, snapshotted from spec.output
	// when the run started. The output endpoint writes only what it declares.
	// +optional
	Output *Output `json:"output,omitempty"`

	// uploads are what the output endpoint persisted for the run, one entry
	// per pod that uploaded.
	// +optional
	// +listType=map
	// +listMapKey=pod
	Uploads []OutputUpload `json:"uploads,omitempty"`
}

// RunSummary is what a QuarksJob's status keeps of a run once a newer one
// started: enough to tell when it ran, why, and how it ended.
type RunSummary struct {
	// number of the run.
	// +required
	Number int64 `json:"number"`

	// jobName is the name of the run's Job.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// trigger is what started the run.
	// +required
	Trigger RunTrigger `json:"trigger"`

	// startTime is when the Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the run finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// result is Running, Succeeded or Failed.
	// +required
	Result RunResult `json:"result"`

	// message explains the result, cut at MaxSummaryMessage bytes.
	// +optional
	Message string `json:"message,omitempty"`

	// secretCount is how many Secrets the run wrote.
	// +optional
	SecretCount int32 `json:"secretCount,omitempty"`
}

// MaxPreviousRuns bounds status.previousRuns, and MaxSummaryMessage the
// message of each, so that the history adds at most a few KiB to a status.
const (
	MaxPreviousRuns   = 10
	MaxSummaryMessage = 512
)

// Summary is what status.previousRuns keeps of the run.
func (r *Run) Summary() RunSummary {
	var secrets int
	for i := range r.Uploads {
		secrets += r.Uploads[i].WrittenSecrets()
	}
	message := text.Truncate(r.Message, MaxSummaryMessage)
	return RunSummary{
		Number: r.Number, JobName: r.JobName, Trigger: r.Trigger,
		StartTime: r.StartTime.DeepCopy(), CompletionTime: r.CompletionTime.DeepCopy(),
		Result: r.Result, Message: message, SecretCount: count32(secrets),
	}
}

// OutputUpload is what the output endpoint persisted from one pod of a run.
type OutputUpload struct {
	// pod whose upload this is.
	// +required
	Pod string `json:"pod"`

	// index is the pod's completion index, for an Indexed Job.
	// +optional
	Index *int32 `json:"index,omitempty"`

	// succeeded is true when every container of the pod that declares output
	// exited with code 0.
	// +optional
	Succeeded bool `json:"succeeded,omitempty"`

	// persisted is true when every declared output that had to be written was
	// written.
	// +optional
	Persisted bool `json:"persisted,omitempty"`

	// pending is true while the upload waits, received and kept by the
	// controller, for the kubelet to report the exit codes of the pod's
	// containers; the controller persists it then, and the run does not end
	// before it has.
	// +optional
	Pending bool `json:"pending,omitempty"`

	// secrets that were written (or found written by an earlier, identical
	// upload): the first MaxRecordedSecrets of them.
	// +optional
	// +listType=atomic
	Secrets []OutputSecret `json:"secrets,omitempty"`

	// secretCount is how many Secrets were written, when secrets does not
	// list them all.
	// +optional
	SecretCount int32 `json:"secretCount,omitempty"`

	// problems found, each naming the container, file, key or size: the
	// first MaxRecordedProblems of them.
	// +optional
	// +listType=atomic
	Problems []string `json:"problems,omitempty"`

	// problemCount is how many problems were found, when problems does not
	// list them all.
	// +optional
	ProblemCount int32 `json:"problemCount,omitempty"`
}

// MaxRecordedSecrets and MaxRecordedProblems bound what one upload's record
// lists, so that a run's record stays small whatever its output: a fan-out
// of thousands of Secrets, or a Job of many pods. The counts say how many
// there were; the Secrets carry the output's labels to find them all.
const (
	MaxRecordedSecrets  = 20
	MaxRecordedProblems = 10
)

// Truncate cuts the lists to their bounds and sets the counts.
func (u *OutputUpload) Truncate() {
	if len(u.Secrets) > MaxRecordedSecrets {
		u.SecretCount = count32(len(u.Secrets))
		u.Secrets = u.Secrets[:MaxRecordedSecrets:MaxRecordedSecrets]
	}
	if len(u.Problems) > MaxRecordedProblems {
		u.ProblemCount = count32(len(u.Problems))
		u.Problems = u.Problems[:MaxRecordedProblems:MaxRecordedProblems]
	}
}

// Compact keeps what decides a run (pod, index, succeeded, persisted, pending), the
// counts and the start of the first problem: the form of an upload recorded
// when the run's record has grown large (many pods).
func (u *OutputUpload) Compact() {
	secrets, problems := u.WrittenSecrets(), max(int(u.ProblemCount), len(u.Problems))
	u.Secrets, u.SecretCount = nil, count32(secrets)
	if len(u.Problems) > 0 {
		first := u.Problems[0]
		if len(first) > 256 {
			first = first[:256] + "…"
		}
		u.Problems, u.ProblemCount = []string{first}, count32(problems)
	}
}

// count32 is the length n as a record's count, which saturates rather than
// wraps.
func count32(n int) int32 {
	switch {
	case n < 0:
		return 0
	case n > math.MaxInt32:
		return math.MaxInt32
	}
	return int32(n)
}

// WrittenSecrets is how many Secrets the upload wrote.
func (u *OutputUpload) WrittenSecrets() int {
	return max(int(u.SecretCount), len(u.Secrets))
}

// OutputSecret is a Secret written by a run.
type OutputSecret struct {
	// name of the Secret.
	// +required
	Name string `json:"name"`

	// container whose output the Secret holds.
	// +optional
	Container string `json:"container,omitempty"`

	// file the Secret was read from.
	// +optional
	File string `json:"file,omitempty"`

	// version of a versioned Secret.
	// +optional
	Version int64 `json:"version,omitempty"`
}

// QuarksJobStatus is the observed state of a QuarksJob.
type QuarksJobStatus struct {
	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: RunActive, LastRunSucceeded, WaitingForReferences, OutputPersisted.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastRun is the newest run.
	// +optional
	LastRun *Run `json:"lastRun,omitempty"`

	// previousRuns are the runs before lastRun, newest first: at most
	// MaxPreviousRuns of them, each as a summary.
	// +optional
	// +listType=atomic
	PreviousRuns []RunSummary `json:"previousRuns,omitempty"`

	// runCount is how many runs were started.
	// +optional
	RunCount int64 `json:"runCount,omitempty"`

	// inputsHash is the hash of the referenced configuration seen by the
	// newest run; a different current hash starts a run when
	// updateOnConfigChange is set.
	// +optional
	InputsHash string `json:"inputsHash,omitempty"`

	// secrets are the output Secrets the newest finished run wrote, at most
	// MaxRecordedSecrets of them.
	// +optional
	// +listType=atomic
	Secrets []OutputSecret `json:"secrets,omitempty"`

	// secretCount is how many Secrets the newest finished run wrote, when
	// secrets does not list them all.
	// +optional
	SecretCount int32 `json:"secretCount,omitempty"`

	// completed is true when the newest finished run succeeded. Kept for
	// manifests and scripts written for the original QuarksJob.
	// +optional
	Completed bool `json:"completed,omitempty"`

	// lastReconcile is when the controller last wrote this status.
	// +optional
	LastReconcile *metav1.Time `json:"lastReconcile,omitempty"`
}

// QuarksJob runs a Job on a trigger and keeps its output in Secrets.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=qjob;qjobs,categories=quarks
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.spec.trigger.strategy`
// +kubebuilder:printcolumn:name="Last Run",type=integer,JSONPath=`.status.lastRun.number`
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.lastRun.result`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.lastRun.message`
type QuarksJob struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec QuarksJobSpec `json:"spec"`
	// +optional
	Status QuarksJobStatus `json:"status,omitempty"`
}

// QuarksJobList is a list of QuarksJobs.
//
// +kubebuilder:object:root=true
type QuarksJobList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QuarksJob `json:"items"`
}
