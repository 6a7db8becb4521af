package metrics

import (
	"runtime"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"code.cloudfoundry.org/quarks-job/api/version"
)

// TestBuildInfoIsServed: the manager's metrics endpoint serves what its registry gathers.
func TestBuildInfoIsServed(t *testing.T) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != version.MetricName {
			continue
		}
		if len(f.GetMetric()) != 1 {
			t.Fatalf("%d %s series, want 1", len(f.GetMetric()), version.MetricName)
		}
		m := f.GetMetric()[0]
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("%s = %v, want 1", version.MetricName, m.GetGauge().GetValue())
		}
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		want := version.Get().Labels("controller")
		if want["goversion"] != runtime.Version() || want["version"] == "" {
			t.Errorf("build labels %v lack the Go version or the version", want)
		}
		for k, v := range want {
			if labels[k] != v {
				t.Errorf("label %s=%q, want %q (all: %v)", k, labels[k], v, labels)
			}
		}
		t.Logf("%s{component=%q,goversion=%q,revision=%q,version=%q} 1", version.MetricName,
			labels["component"], labels["goversion"], labels["revision"], labels["version"])
		return
	}
	t.Fatalf("the registry serves no %s", version.MetricName)
}
