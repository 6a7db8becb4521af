package v1alpha1

import (
	"fmt"
	"strconv"
	"time"
)

// RunRequest is an accepted trigger: the run it asks for. The controller stores
// it in the QuarksJob's annotations in the same write that consumes the
// trigger, so the trigger and its run can never be separated by a crash.
// It lives in annotations, never in an object's spec or status.
// +kubebuilder:object:generate=false
type RunRequest struct {
	// Run is the number of the requested run.
	Run int64
	// By is what triggered it.
	By RunTrigger
	// At is when the controller accepted the trigger.
	At time.Time
}

// RunRequestOf reads the newest request. ok is false when none was ever made.
func RunRequestOf(annotations map[string]string) (r RunRequest, ok bool, err error) {
	raw, found := annotations[AnnotationRequestedRun]
	if !found {
		return RunRequest{}, false, nil
	}
	run, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || run < 1 {
		return RunRequest{}, false, fmt.Errorf("annotation %s=%q is not a run number", AnnotationRequestedRun, raw)
	}
	r = RunRequest{Run: run, By: RunTrigger(annotations[AnnotationRequestedTrigger])}
	if at, err := time.Parse(time.RFC3339Nano, annotations[AnnotationRequestedAt]); err == nil {
		r.At = at
	}
	return r, true, nil
}

// Annotate writes the request into annotations, which must not be nil.
func (r RunRequest) Annotate(annotations map[string]string) {
	annotations[AnnotationRequestedRun] = strconv.FormatInt(r.Run, 10)
	annotations[AnnotationRequestedTrigger] = string(r.By)
	annotations[AnnotationRequestedAt] = r.At.UTC().Format(time.RFC3339Nano)
}
