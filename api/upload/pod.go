package upload

import "code.cloudfoundry.org/quarks-job/api/upload/protocol"

// The contract between the pod webhook, which injects the persister, and the
// persister, which reads it. See package protocol.
const (
	OutputRoot             = protocol.OutputRoot
	PersisterContainerName = protocol.PersisterContainerName
	TokenPath              = protocol.TokenPath

	EnvEndpoint     = protocol.EnvEndpoint
	EnvCABundle     = protocol.EnvCABundle
	EnvOutputFiles  = protocol.EnvOutputFiles
	EnvPodName      = protocol.EnvPodName
	EnvPodNamespace = protocol.EnvPodNamespace

	EnvUploadTimeout     = protocol.EnvUploadTimeout
	DefaultUploadTimeout = protocol.DefaultUploadTimeout
)

// Names the pod webhook reserves in job pods; see package protocol.
const (
	ReservedVolumePrefix = protocol.ReservedVolumePrefix
	OutputVolumePrefix   = protocol.OutputVolumePrefix
	TokenVolumeName      = protocol.TokenVolumeName
)
