// Package protocol is the wire contract between the persister sidecar and
// the controller's output endpoint: the pod environment the persister reads,
// the upload message, and the output-file validator both sides run. It uses
// the standard library only, so the persister's static binary stays small;
// package upload re-exports it.
//
// The persister authenticates with its pod-bound service-account token
// (audience Audience) in the Authorization header. The controller derives the
// pod from the token, never from the message, and writes only the Secrets the
// run's Job declares.
package protocol

const (
	// Version is the version of this protocol: the upload message, the
	// answer and the pod environment. A persister says which version it
	// speaks in the HeaderVersion header of every upload; the controller
	// refuses one it does not serve with a message recorded on the run (see
	// docs/upgrading.md, version skew). A change that an older persister or
	// controller would misread gets a new version.
	Version = "v1alpha1"
	// HeaderVersion is the upload header that names the protocol version the
	// persister speaks. Persisters released before it send none; they speak
	// v1alpha1.
	HeaderVersion = "Quarks-Job-Upload-Protocol"
	// UserAgentPrefix starts the persister's User-Agent header, followed by
	// its release version: quarks-job-persister/v0.2.0.
	UserAgentPrefix = "quarks-job-persister/"
	// Path is the URL path of the output endpoint.
	Path = "/" + Version + "/output"
	// Audience is the audience of the persister's service-account token.
	Audience = "quarks-job"
	// MaxFileBytes is the most an output file may hold: what one Secret holds.
	MaxFileBytes = 1 << 20
	// MaxRequestBytes bounds an upload: every file of every container.
	MaxRequestBytes = 16 << 20
)

// Request is the output of one pod.
type Request struct {
	// Containers holds the output of each container that declares output.
	Containers []Container `json:"containers"`
}

// Container is the output of one container.
type Container struct {
	// Name of the container.
	Name string `json:"name"`
	// Files the container wrote, among those it declares.
	Files []File `json:"files,omitempty"`
	// Missing lists the declared files the container did not write.
	Missing []string `json:"missing,omitempty"`
}

// File is one output file as the container wrote it. The controller
// validates it again; the persister's own checks only make errors show early.
type File struct {
	// Name of the file in the container's output directory.
	Name string `json:"name"`
	// Content is the file's bytes.
	Content []byte `json:"content,omitempty"`
	// Error is set when the persister could not read the file.
	Error string `json:"error,omitempty"`
}

// Response is the controller's answer to an upload.
type Response struct {
	// Secrets the upload wrote or found already written.
	Secrets []string `json:"secrets,omitempty"`
	// Problems found in the output, each naming the container and file.
	Problems []string `json:"problems,omitempty"`
}
