package upload

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
	TokenPath = "/var/run/secrets/quarks-job/token"

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
