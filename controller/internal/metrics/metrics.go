// Package metrics holds the operator's Prometheus metrics, registered on
// controller-runtime's registry so the manager's metrics endpoint serves them.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"code.cloudfoundry.org/quarks-job/api/version"
)

var (
	// RunsStarted counts started runs by trigger.
	RunsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quarks_job_runs_started_total",
		Help: "Runs started, by trigger.",
	}, []string{"trigger"})

	// RunsFinished counts finished runs by trigger and result.
	RunsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quarks_job_runs_finished_total",
		Help: "Runs finished, by trigger and result.",
	}, []string{"trigger", "result"})

	// TriggerToJob is the time from accepting a trigger to creating its Job.
	TriggerToJob = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "quarks_job_trigger_to_job_created_seconds",
		Help:    "Time from accepting a trigger to creating the run's Job, by trigger.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"trigger"})

	// BuildInfo is always 1; its labels say which build runs (component, version, revision,
	// goversion), so dashboards can tell versions apart during an upgrade.
	BuildInfo = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        version.MetricName,
		Help:        "Always 1; the labels are the running binary's component, version, git revision and Go version.",
		ConstLabels: version.Get().Labels("controller"),
	})
)

func init() {
	BuildInfo.Set(1)
	metrics.Registry.MustRegister(RunsStarted, RunsFinished, TriggerToJob, BuildInfo)
}
