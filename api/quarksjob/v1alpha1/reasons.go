package v1alpha1

// Reasons of the QuarksJob's conditions (metav1.Condition.Reason), by
// condition. docs/runs.md lists them with what they mean.
const (
	// RunActive.
	ReasonRunning = "Running"
	ReasonIdle    = "Idle"
	// RunPending.
	ReasonWaitingForActiveRun = "WaitingForActiveRun"
	ReasonNoTrigger           = "NoTrigger"
	// LastRunSucceeded.
	ReasonSucceeded     = "Succeeded"
	ReasonFailed        = "Failed"
	ReasonNoRunFinished = "NoRunFinished"
	// OutputPersisted.
	ReasonPersisted    = "Persisted"
	ReasonNotPersisted = "NotPersisted"
	// WaitingForReferences.
	ReasonMissingReferences = "MissingReferences"
	ReasonReferencesFound   = "ReferencesFound"
)

// Reasons of the Events the controller emits on a QuarksJob.
const (
	// A run's life.
	EventRunStarted   = "RunStarted"
	EventRunSucceeded = "RunSucceeded"
	EventRunFailed    = "RunFailed"
	// A Job that claims the QuarksJob as controller but is no recorded run.
	EventForeignJob = "ForeignJob"

	// An upload's output.
	EventOutputPersisted   = "OutputPersisted"
	EventSecretAdopted     = "SecretAdopted"
	EventSecretNotOwned    = "SecretNotOwned"
	EventSecretWriteFailed = "SecretWriteFailed"

	// Problems of an upload's files, also in its record on the run.
	EventInvalidOutput      = "InvalidOutput"
	EventOutputMissing      = "OutputMissing"
	EventExitCodeUnknown    = "ExitCodeUnknown"
	EventContainerNotInPod  = "ContainerNotInPod"
	EventUndeclaredOutput   = "UndeclaredOutput"
	EventOutputNotExpected  = "OutputNotExpected"
	EventInvalidSecret      = "InvalidSecret"
	EventPersisterReadError = "PersisterReadError"
	EventTooManySecrets     = "TooManySecrets"
)
