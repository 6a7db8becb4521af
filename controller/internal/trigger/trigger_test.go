package trigger

import (
	"testing"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

func TestAccept(t *testing.T) {
	cases := []struct {
		strategy qjv1.Strategy
		next     qjv1.Strategy
		by       qjv1.RunTrigger
		fires    bool
	}{
		{qjv1.StrategyManual, qjv1.StrategyManual, "", false},
		{qjv1.StrategyNow, qjv1.StrategyManual, qjv1.RunTriggerNow, true},
		{qjv1.StrategyOnce, qjv1.StrategyDone, qjv1.RunTriggerOnce, true},
		{qjv1.StrategyDone, qjv1.StrategyDone, "", false},
	}
	for _, c := range cases {
		next, by, fires := Accept(c.strategy)
		if next != c.next || by != c.by || fires != c.fires {
			t.Errorf("Accept(%q) = %q, %q, %v; want %q, %q, %v", c.strategy, next, by, fires, c.next, c.by, c.fires)
		}
	}
}
