// Package upload is the message the persister sidecar sends to the
// controller's output endpoint, and the controller's answer.
//
// The persister authenticates with its pod-bound service-account token
// (audience Audience) in the Authorization header. The controller derives the
// pod from the token, never from this message, and writes only the Secrets
// the run's Job declares.
//
// The message, the pod environment and the output validator are defined in
// package protocol (standard library only, for the persister's small binary)
// and re-exported here; Result, which refers to the QuarksJob API, lives here.
package upload

import (
	"fmt"
	"io"
	"strings"

	"code.cloudfoundry.org/quarks-job/api/upload/protocol"
)

const (
	// Version is the version of the upload protocol.
	Version = protocol.Version
	// HeaderVersion is the upload header naming the protocol version.
	HeaderVersion = protocol.HeaderVersion
	// UserAgentPrefix starts the persister's User-Agent header.
	UserAgentPrefix = protocol.UserAgentPrefix
	// Path is the URL path of the output endpoint.
	Path = protocol.Path
	// Audience is the audience of the persister's service-account token.
	Audience = protocol.Audience
	// MaxFileBytes is the most an output file may hold: what one Secret holds.
	MaxFileBytes = protocol.MaxFileBytes
	// MaxRequestBytes bounds an upload: every file of every container.
	MaxRequestBytes = protocol.MaxRequestBytes
)

type (
	// Request is the output of one pod.
	Request = protocol.Request
	// Container is the output of one container.
	Container = protocol.Container
	// File is one output file as the container wrote it.
	File = protocol.File
	// Response is the controller's answer to an upload.
	Response = protocol.Response
	// OutputError is why an output file is not a flat JSON object of strings.
	OutputError = protocol.OutputError
	// ProblemKind says what is wrong with an output file.
	ProblemKind = protocol.ProblemKind
)

// ParseOutput parses an output file: a flat JSON object of string values, at
// most MaxFileBytes. See protocol.ParseOutput.
func ParseOutput(content []byte) (map[string]string, error) {
	return protocol.ParseOutput(content)
}

// DecodeRequest reads an upload message; see protocol.DecodeRequest.
func DecodeRequest(body io.Reader) (*Request, error) {
	return protocol.DecodeRequest(body)
}

// FileProblem words a problem of an output file; see protocol.FileProblem.
func FileProblem(container, file string, problem error) string {
	return protocol.FileProblem(container, file, problem)
}

// CheckFileName accepts a plain file name: not empty, not "." or "..", no
// path separator.
func CheckFileName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("output file name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("output file name %q is not a file name", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("output file name %q must be a plain file name, without '/'", name)
	}
	return nil
}
