package v1alpha1

import corev1 "k8s.io/api/core/v1"

// Labels and annotations the components agree on. The names of the original
// QuarksJob are kept where it had one.
const (
	// LabelQJobName is set on a run's Job and pods to the QuarksJob's name (or,
	// for names longer than a label value may be, to a stable hash of it). The
	// pod webhook's objectSelector selects pods by it.
	LabelQJobName = GroupName + "/qjob-name"
	// LabelRun is set on a run's Job and pods to the run number.
	LabelRun = GroupName + "/run"
	// LabelPersistentSecretContainer is set on output Secrets to the container
	// that wrote them.
	LabelPersistentSecretContainer = GroupName + "/container-name"
	// LabelRemoteID is set on output Secrets to the value of the REMOTE_ID
	// environment variable of the container that wrote them, as the original
	// did, so that tools select a remote resource's Secrets by it.
	LabelRemoteID = GroupName + "/remote-id"
	// RemoteIDEnv is the environment variable LabelRemoteID is taken from. Only
	// a literal value in the run's Job template counts, never what a pod says.
	RemoteIDEnv = "REMOTE_ID"
	// LabelSecretKind marks versioned Secrets with the value SecretKindVersioned.
	LabelSecretKind = GroupName + "/secret-kind"
	// SecretKindVersioned is the value of LabelSecretKind on versioned Secrets.
	SecretKindVersioned = "versionedSecret"
	// LabelSecretVersion is set on versioned Secrets to their version number.
	LabelSecretVersion = GroupName + "/secret-version"
	// LabelMonitoredNamespace marks namespaces the operator watches when it is
	// told to watch namespaces by label, as the original did.
	LabelMonitoredNamespace = GroupName + "/monitored"

	// AnnotationOutputOf on a plain output Secret kept after its QuarksJob
	// (output.deletePolicy Retain) names the QuarksJob whose output it is:
	// a QuarksJob of that name in the Secret's namespace owns it.
	AnnotationOutputOf = GroupName + "/output-of"

	// AnnotationOutputRun on an output Secret is the number of the run that
	// last wrote it (for a versioned Secret: that created it). Set by the
	// output endpoint; a secretAnnotations entry of this name is overridden.
	AnnotationOutputRun = GroupName + "/run"

	// AnnotationOutputPod on an output Secret is the UID of the pod whose
	// upload wrote it. Set by the output endpoint; a version of a family
	// that carries it is that pod's output already, so a repeated upload
	// (a lost answer, a controller killed mid-write) adds no version.
	AnnotationOutputPod = GroupName + "/output-pod-uid"

	// AnnotationSourceDescription on a versioned Secret says what wrote it.
	AnnotationSourceDescription = GroupName + "/source-description"

	// AnnotationRequestedRun on a QuarksJob holds the number of the newest run
	// the controller accepted a trigger for. The controller writes it in the
	// same update that consumes the trigger, so a run is never lost or doubled
	// by a crash between accepting a trigger and creating its Job.
	AnnotationRequestedRun = GroupName + "/requested-run"
	// AnnotationRequestedTrigger holds the RunTrigger of the requested run.
	AnnotationRequestedTrigger = GroupName + "/requested-trigger"
	// AnnotationRequestedAt holds when the trigger was accepted (RFC 3339).
	AnnotationRequestedAt = GroupName + "/requested-at"

	// AnnotationRunTrigger on a run's Job holds the RunTrigger that started it.
	AnnotationRunTrigger = GroupName + "/run-trigger"
	// AnnotationInputsHash on a run's Job holds the hash of the referenced
	// configuration the run was created with.
	AnnotationInputsHash = GroupName + "/inputs-hash"
	// AnnotationOutputFiles on a run's pod template lists, as JSON
	// (container → file names), the files each container declares. The pod
	// webhook reads it to know which containers get an output volume.
	AnnotationOutputFiles = GroupName + "/output-files"

	// AnnotationOutputSpec and AnnotationOutputResult were written on run
	// Jobs by earlier versions, which trusted them. The output spec and the
	// upload results now live in the QuarksJob's status; the names stay
	// reserved so that no template or forged Job can pass them off.
	AnnotationOutputSpec   = GroupName + "/output-spec"
	AnnotationOutputResult = GroupName + "/output-result"
)

// ReservedRunLabels are the labels the controller sets on a run's Job and
// pods. A Job template may not set them, and the chart's admission policy
// lets only the controller (Jobs) and the Job controller (pods) write them.
var ReservedRunLabels = []string{LabelQJobName, LabelRun}

// ReservedRunAnnotations are the annotations the controller sets on a run's
// Job and pods, or that earlier versions trusted there.
var ReservedRunAnnotations = []string{
	AnnotationRunTrigger, AnnotationInputsHash, AnnotationOutputFiles,
	AnnotationOutputSpec, AnnotationOutputResult,
}

// ReservedSecretLabels and ReservedSecretAnnotations are the keys the
// controller writes on output Secrets, and reads to tell a version, its
// family, its run and its pod. An output's secretLabels and
// secretAnnotations may not set them: the CRD refuses them (its rule lists
// the same keys; TestReservedSecretKeysInTheCRD holds both together), and
// the controller never copies them from a spec admitted before that rule.
var (
	ReservedSecretLabels = []string{LabelQJobName, LabelRun, LabelPersistentSecretContainer, LabelRemoteID,
		LabelSecretKind, LabelSecretVersion}
	ReservedSecretAnnotations = []string{AnnotationOutputOf, AnnotationOutputRun, AnnotationOutputPod,
		AnnotationSourceDescription}
)

// ReservedTemplateKeys lists the reserved run labels and annotations a Job
// template sets, each as "<field> <key>". The controller drops them from the
// Job it creates; QuarksJob admission warns about them.
func ReservedTemplateKeys(template *JobTemplate) []string {
	var found []string
	check := func(where string, m map[string]string, reserved []string) {
		for _, k := range reserved {
			if _, ok := m[k]; ok {
				found = append(found, where+" "+k)
			}
		}
	}
	check("spec.template.metadata.labels", template.Labels, ReservedRunLabels)
	check("spec.template.metadata.annotations", template.Annotations, ReservedRunAnnotations)
	check("spec.template.spec.template.metadata.labels", template.Spec.Template.Labels, ReservedRunLabels)
	check("spec.template.spec.template.metadata.annotations", template.Spec.Template.Annotations, ReservedRunAnnotations)
	return found
}

// RemoteID returns the literal value of the container's REMOTE_ID
// environment variable (RemoteIDEnv), or "": the value of LabelRemoteID on
// the Secrets the container's output becomes.
func RemoteID(c *corev1.Container) string {
	id := ""
	for _, e := range c.Env { // the last of duplicate names is the one a container sees
		if e.Name == RemoteIDEnv {
			id = e.Value
		}
	}
	return id
}

// Condition types of a QuarksJob.
const (
	// ConditionRunActive is True while a run's Job is active.
	ConditionRunActive = "RunActive"
	// ConditionRunPending is True while an accepted trigger waits for the
	// active run to end.
	ConditionRunPending = "RunPending"
	// ConditionLastRunSucceeded tells how the newest finished run ended.
	ConditionLastRunSucceeded = "LastRunSucceeded"
	// ConditionOutputPersisted tells whether the newest finished run's
	// declared output was written to Secrets.
	ConditionOutputPersisted = "OutputPersisted"
	// ConditionWaitingForReferences is True while a requested run waits for
	// ConfigMaps or Secrets its pods need; the message names them.
	ConditionWaitingForReferences = "WaitingForReferences"
)
