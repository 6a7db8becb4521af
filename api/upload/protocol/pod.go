package protocol

// The contract between the pod webhook, which injects the persister, and the
// persister, which reads it.
const (
	// OutputRoot is where a container writes its output files. The persister
	// sees each container's directory at OutputRoot/<container>.
	OutputRoot = "/mnt/quarks"
	// PersisterContainerName is the name of the injected sidecar.
	PersisterContainerName = "output-persist"
	// TokenPath is where the persister's projected service-account token
	// (audience Audience) is mounted.
	TokenPath = "/var/run/secrets/quarks-job/token" //nolint:gosec // G101: a mount path, not a credential

	// EnvEndpoint is the URL of the controller's output endpoint.
	EnvEndpoint = "QUARKS_JOB_OUTPUT_URL"
	// EnvCABundle is the PEM CA bundle that signs the endpoint's certificate.
	EnvCABundle = "QUARKS_JOB_OUTPUT_CA"
	// EnvOutputFiles is, as JSON, the files each container declares
	// (container → file names), copied from the pod's output-files annotation.
	EnvOutputFiles = "QUARKS_JOB_OUTPUT_FILES"
	// EnvPodName and EnvPodNamespace come from the downward API, for logs.
	EnvPodName      = "QUARKS_JOB_POD_NAME"
	EnvPodNamespace = "QUARKS_JOB_POD_NAMESPACE"
)

// Names the pod webhook reserves in job pods. The QuarksJob webhook rejects a
// template whose volumes use them, so injected volumes never collide with the
// user's.
const (
	// ReservedVolumePrefix starts the name of every volume the webhook injects.
	ReservedVolumePrefix = "quarks-job-"
	// OutputVolumePrefix starts the name of each container's output volume:
	// the prefix and the container name, or for long names a shortened name
	// and a hash of the full one.
	OutputVolumePrefix = ReservedVolumePrefix + "output-"
	// TokenVolumeName is the projected service-account token volume mounted
	// in the persister only.
	TokenVolumeName = ReservedVolumePrefix + "token"
)

// EnvUploadTimeout is how long the persister may take, from SIGTERM, to have
// its upload acknowledged: a Go duration ("25s") or whole seconds ("25"). The
// webhook sets it a few seconds below the pod's terminationGracePeriodSeconds
// so the persister gives up and exits before the kubelet kills it.
const EnvUploadTimeout = "QUARKS_JOB_UPLOAD_TIMEOUT"

// DefaultUploadTimeout suits the default terminationGracePeriodSeconds of 30.
const DefaultUploadTimeout = "25s"
