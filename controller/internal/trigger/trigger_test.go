package trigger

import (
	"testing"
	"time"

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

func TestRequestRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	annotations := map[string]string{}
	Request{Run: 7, By: qjv1.RunTriggerNow, At: at}.Annotate(annotations)
	got, ok, err := FromAnnotations(annotations)
	if err != nil || !ok {
		t.Fatalf("FromAnnotations: ok=%v err=%v", ok, err)
	}
	if got.Run != 7 || got.By != qjv1.RunTriggerNow || !got.At.Equal(at) {
		t.Fatalf("round trip = %+v", got)
	}
}

func TestFromAnnotationsRejectsGarbage(t *testing.T) {
	for _, raw := range []string{"", "x", "0", "-3"} {
		_, _, err := FromAnnotations(map[string]string{qjv1.AnnotationRequestedRun: raw})
		if err == nil {
			t.Errorf("run %q accepted", raw)
		}
	}
	if _, ok, err := FromAnnotations(nil); ok || err != nil {
		t.Errorf("no annotations: ok=%v err=%v", ok, err)
	}
}
