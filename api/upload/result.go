package upload

import qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"

// Result is what the output endpoint persisted for one run. It is stored as
// JSON in the run Job's AnnotationOutputResult; the controller reads it when
// the Job finishes.
type Result struct {
	// Persisted is true when every declared output that had to be written was
	// written.
	Persisted bool `json:"persisted"`
	// Secrets that were written (or found written by an earlier, identical upload).
	Secrets []qjv1.OutputSecret `json:"secrets,omitempty"`
	// Problems found, each naming the container, file, key or size.
	Problems []string `json:"problems,omitempty"`
	// Pod whose upload this is. An upload from another pod of the same Job
	// (a retry) replaces this Result, except that a persisted Result is never
	// replaced by a failed one of another pod.
	Pod string `json:"pod,omitempty"`
}
