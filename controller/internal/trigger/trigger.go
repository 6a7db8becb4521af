// Package trigger is the QuarksJob trigger state machine: which strategies
// start a run and what the strategy becomes once the controller accepts it.
// The run request the controller records when it does is
// qjv1.RunRequest.
package trigger

import (
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
