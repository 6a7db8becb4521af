// Package trigger is the QuarksJob trigger state machine: which strategies
// start a run and what the strategy becomes once the controller accepts it,
// and the run request the controller records when it does.
package trigger

import (
	"fmt"
	"strconv"
	"time"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// Accept says whether a strategy asks for a run and, if so, which trigger it
// is and what the strategy becomes once the run is accepted:
// now → manual, once → done. manual and done ask for nothing.
func Accept(s qjv1.Strategy) (next qjv1.Strategy, by qjv1.RunTrigger, fires bool) {
	switch s {
	case qjv1.StrategyNow:
		return qjv1.StrategyManual, qjv1.RunTriggerNow, true
	case qjv1.StrategyOnce:
		return qjv1.StrategyDone, qjv1.RunTriggerOnce, true
	default:
		return s, "", false
	}
}

// Request is an accepted trigger: the run it asks for. The controller stores
// it in the QuarksJob's annotations in the same write that consumes the
// trigger, so the trigger and its run can never be separated by a crash.
type Request struct {
	// Run is the number of the requested run.
	Run int64
	// By is what triggered it.
	By qjv1.RunTrigger
	// At is when the controller accepted the trigger.
	At time.Time
}

// FromAnnotations reads the newest request. ok is false when none was ever made.
func FromAnnotations(annotations map[string]string) (r Request, ok bool, err error) {
	raw, found := annotations[qjv1.AnnotationRequestedRun]
	if !found {
		return Request{}, false, nil
	}
	run, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || run < 1 {
		return Request{}, false, fmt.Errorf("annotation %s=%q is not a run number", qjv1.AnnotationRequestedRun, raw)
	}
	r = Request{Run: run, By: qjv1.RunTrigger(annotations[qjv1.AnnotationRequestedTrigger])}
	if at, err := time.Parse(time.RFC3339Nano, annotations[qjv1.AnnotationRequestedAt]); err == nil {
		r.At = at
	}
	return r, true, nil
}

// Annotate writes the request into annotations, which must not be nil.
func (r Request) Annotate(annotations map[string]string) {
	annotations[qjv1.AnnotationRequestedRun] = strconv.FormatInt(r.Run, 10)
	annotations[qjv1.AnnotationRequestedTrigger] = string(r.By)
	annotations[qjv1.AnnotationRequestedAt] = r.At.UTC().Format(time.RFC3339Nano)
}
