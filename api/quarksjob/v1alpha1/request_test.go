package v1alpha1

import (
	"testing"
	"time"
)

func TestRequestRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	annotations := map[string]string{}
	RunRequest{Run: 7, By: RunTriggerNow, At: at}.Annotate(annotations)
	got, ok, err := RunRequestOf(annotations)
	if err != nil || !ok {
		t.Fatalf("RunRequestOf: ok=%v err=%v", ok, err)
	}
	if got.Run != 7 || got.By != RunTriggerNow || !got.At.Equal(at) {
		t.Fatalf("round trip = %+v", got)
	}
}

func TestRunRequestOfRejectsGarbage(t *testing.T) {
	for _, raw := range []string{"", "x", "0", "-3"} {
		_, _, err := RunRequestOf(map[string]string{AnnotationRequestedRun: raw})
		if err == nil {
			t.Errorf("run %q accepted", raw)
		}
	}
	if _, ok, err := RunRequestOf(nil); ok || err != nil {
		t.Errorf("no annotations: ok=%v err=%v", ok, err)
	}
}
