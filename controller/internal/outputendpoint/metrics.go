package outputendpoint

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

var (
	uploadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quarks_job_output_uploads_total",
		Help: "Uploads received by the output endpoint, by HTTP status code.",
	}, []string{"code"})
	uploadDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "quarks_job_output_upload_to_secret_seconds",
		Help:    "From an accepted upload's arrival to its Secrets written and its result recorded in the run's record.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"persisted"})
	tokenChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quarks_job_output_token_checks_total",
		Help: "Bearer tokens of uploads checked, by outcome: cached (reviewed recently), not-issued (refused by the issuer's keys, no review), " +
			"throttled (answered 429: a namespace past its reviews, or, of the not-issued, those of an address past its refusals), " +
			"reviewed-namespace or reviewed-address (a TokenReview charged to the token's verified namespace, or to the source address when the issuer's keys cannot be read).",
	}, []string{"outcome"})
	outputBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "quarks_job_output_bytes_total",
		Help: "Bytes of output files received by the output endpoint.",
	})
)

func init() {
	metrics.Registry.MustRegister(uploadsTotal, uploadDuration, tokenChecks, outputBytes)
}

// observe records an accepted upload.
func observe(o outcome, req *upload.Request, received time.Time) {
	code := 200
	if o.retry != "" {
		code = 503
	}
	uploadsTotal.WithLabelValues(fmt.Sprint(code)).Inc()
	uploadDuration.WithLabelValues(fmt.Sprint(o.result.Persisted)).Observe(time.Since(received).Seconds())
	for _, c := range req.Containers {
		for _, f := range c.Files {
			outputBytes.Add(float64(len(f.Content)))
		}
	}
}
