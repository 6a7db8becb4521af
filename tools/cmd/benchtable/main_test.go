package main

import (
	"bytes"
	"strings"
	"testing"
)

// A `go test -bench` output with two runs of one benchmark, log lines
// between results and within one, and one result of another package.
const output = `goos: linux
goarch: amd64
pkg: code.cloudfoundry.org/quarks-job/controller/internal/controller/quarksjob
cpu: Some CPU
BenchmarkFanIn-2   	       1	9000000000 ns/op	         0.9000 over-floor-100	         1.300 over-floor-1000	         3.000 operator-1000-s
    bench_test.go:10: a log line
BenchmarkFanIn-2   	{"level":"error","msg":"a log line written while the benchmark ran"}
       1	9000000000 ns/op	         1.100 over-floor-100	         1.100 over-floor-1000	         2.000 operator-1000-s
PASS
ok  	code.cloudfoundry.org/quarks-job/controller/internal/controller/quarksjob	20.1s
pkg: code.cloudfoundry.org/quarks-job/controller/cmd/quarks-job
BenchmarkScale-2   	       1	9000000000 ns/op	         0 restart-10k-writes	   12345 rss-bytes-per-qjob-10k
`

func TestTable(t *testing.T) {
	f := figures{}
	if err := read(f, strings.NewReader(output), "output"); err != nil {
		t.Fatal(err)
	}
	goals := []goal{
		{figure: "median of 0.9 and 1.1 meets ≤ 1.1", bench: "BenchmarkFanIn", unit: "over-floor-100", cmp: atMost, limit: 1.10},
		{figure: "median 1.2 misses ≤ 1.1", bench: "BenchmarkFanIn", unit: "over-floor-1000", cmp: atMost, limit: 1.10, also: []string{"operator-1000-s"}},
		{figure: "zero writes", bench: "BenchmarkScale", unit: "restart-10k-writes", cmp: atMost, limit: 0, also: []string{"rss-bytes-per-qjob-10k"}},
		{figure: "a figure no benchmark reported", bench: "BenchmarkScale", unit: "restart-10k-ready-s", cmp: below, limit: 30},
	}
	var out bytes.Buffer
	failed := printTable(&out, goals, f)
	want := `| figure | goal | measured | result |
|---|---|---|---|
| median of 0.9 and 1.1 meets ≤ 1.1 | ≤ 1.1 | 1 | pass |
| median 1.2 misses ≤ 1.1 | ≤ 1.1 | 1.2 (operator-1000-s 2.5) | FAIL |
| zero writes | ≤ 0 | 0 (rss-bytes-per-qjob-10k 12345) | pass |
| a figure no benchmark reported | < 30 | missing (restart-10k-ready-s of BenchmarkScale) | FAIL |
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
	if failed != 2 {
		t.Errorf("failed = %d, want 2", failed)
	}
}

// Every goal names a figure, a benchmark, a metric and a comparison.
func TestGoalsComplete(t *testing.T) {
	for _, g := range goals {
		if g.figure == "" || !strings.HasPrefix(g.bench, "Benchmark") || g.unit == "" || (g.cmp != atMost && g.cmp != below) {
			t.Errorf("incomplete goal: %+v", g)
		}
	}
}
