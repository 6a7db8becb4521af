package upload

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"code.cloudfoundry.org/quarks-job/api/upload/protocol"
)

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

// OutputVolumeName is the name of the output volume the pod webhook gives a
// container that declares output. It starts with OutputVolumePrefix and is a
// valid volume name (a DNS label) for every valid container name. The
// controller's output endpoint checks a run's pod against it.
func OutputVolumeName(container string) string {
	const maxLen = 63
	name := OutputVolumePrefix + container
	if len(name) <= maxLen {
		return name
	}
	sum := sha256.Sum256([]byte(container))
	suffix := "-" + hex.EncodeToString(sum[:])[:10]
	keep := maxLen - len(OutputVolumePrefix) - len(suffix)
	return OutputVolumePrefix + strings.TrimRight(container[:keep], "-") + suffix
}
