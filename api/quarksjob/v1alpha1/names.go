package v1alpha1

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
	// LabelSecretKind marks versioned Secrets with the value SecretKindVersioned.
	LabelSecretKind = GroupName + "/secret-kind"
	// SecretKindVersioned is the value of LabelSecretKind on versioned Secrets.
	SecretKindVersioned = "versionedSecret"
	// LabelSecretVersion is set on versioned Secrets to their version number.
	LabelSecretVersion = GroupName + "/secret-version"
	// LabelMonitoredNamespace marks namespaces the operator watches when it is
	// told to watch namespaces by label, as the original did.
	LabelMonitoredNamespace = GroupName + "/monitored"

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
	// AnnotationOutputSpec on a run's Job holds the QuarksJob's output spec as
	// JSON, snapshotted when the run was created. The output endpoint writes
	// only what it declares.
	AnnotationOutputSpec = GroupName + "/output-spec"
	// AnnotationOutputFiles on a run's pod template lists, as JSON
	// (container → file names), the files each container declares. The pod
	// webhook reads it to know which containers get an output volume.
	AnnotationOutputFiles = GroupName + "/output-files"
)

// AnnotationOutputResult on a run's Job holds, as JSON, what the output
// endpoint persisted for the run: the Secrets written and the problems found.
// The controller reads it when the Job finishes to decide the run's result.
const AnnotationOutputResult = GroupName + "/output-result"
