package main

// goals are the figures of docs/performance.md (issue 18, items 7–10): each
// a metric one benchmark reports, the goal it must meet, and the metrics
// shown beside it. A row without a comparison only reports.
var goals = []goal{
	// 7. Fan-in: the operator's time over the floor (the same API writes made
	// by plain calls, in the same run, with the same parallelism).
	{figure: "7 fan-in, 100 QuarksJobs: operator / floor", bench: "BenchmarkFanIn", unit: "over-floor-100", cmp: atMost, limit: 1.10,
		also: []string{"operator-100-s", "floor-100-s"}},
	{figure: "7 fan-in, 1,000 QuarksJobs: operator / floor", bench: "BenchmarkFanIn", unit: "over-floor-1000", cmp: atMost, limit: 1.10,
		also: []string{"operator-1000-s", "floor-1000-s"}},
	{figure: "7 fan-in growth 100 → 1,000: time per QuarksJob at 1,000 / at 100", bench: "BenchmarkFanIn", unit: "growth-100-to-1000", cmp: atMost, limit: 1.25},
	{figure: "7 the operator's writes per run (Events aside; the floor's: 4 + the Event)", bench: "BenchmarkFanIn", unit: "operator-writes-per-run-1000", cmp: atMost, limit: 4.1,
		also: []string{"operator-writes-per-run-100", "operator-api-reads-per-run-1000"}},

	// 8. Latency.
	{figure: "8 trigger (now) → Job created, p99 over 1,000, idle controller", bench: "BenchmarkTriggerToJob", unit: "trigger-to-job-p99-ms", cmp: below, limit: 50,
		also: []string{"trigger-to-job-p50-ms", "trigger-to-job-max-ms", "trigger-floor-p50-ms", "trigger-floor-p99-ms"}},
	{figure: "8 container exit (upload sent) → output Secret written, p99 over 1,000", bench: "BenchmarkExitToSecret", unit: "exit-to-secret-p99-ms", cmp: below, limit: 1000,
		also: []string{"exit-to-secret-p50-ms", "exit-to-answer-p99-ms"}},

	// 9. Restart at scale.
	{figure: "9 restart with 10,000 up-to-date QuarksJobs: API writes", bench: "BenchmarkScale", unit: "restart-10k-writes", cmp: atMost, limit: 0,
		also: []string{"restart-1k-writes"}},
	{figure: "9 restart with 10,000 QuarksJobs: ready (s)", bench: "BenchmarkScale", unit: "restart-10k-ready-s", cmp: atMost, limit: 30,
		also: []string{"restart-1k-ready-s"}},

	// 10. Memory.
	{figure: "10 RSS growth per QuarksJob, 1,000 → 10,000 (1 = linear)", bench: "BenchmarkScale", unit: "rss-growth-1k-to-10k", cmp: atMost, limit: 1.5,
		also: []string{"rss-0-MiB", "rss-1k-MiB", "rss-10k-MiB", "rss-bytes-per-qjob-10k"}},
	{figure: "10 RSS peak with 10,000 QuarksJobs during 1,000 concurrent uploads (MiB; the chart's limit is 256)", bench: "BenchmarkScale", unit: "rss-burst-peak-MiB", cmp: atMost, limit: 256,
		also: []string{"rss-burst-over-10k-MiB", "burst-s", "burst-uploads-retried"}},
}
