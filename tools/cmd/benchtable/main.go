// Command benchtable reads the output of `go test -bench` (the figures the
// benchmarks report with b.ReportMetric), checks it against the goals of
// docs/performance.md, prints one table (figure, goal, measured, result) in
// Markdown, and exits with status 1 when a goal is not met or a figure is
// missing. With -count above 1, each figure is the median of its runs.
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/perf/benchfmt"
)

func main() {
	cmd := &cobra.Command{
		Use:   "benchtable FILE...",
		Short: "Check `go test -bench` output against the performance goals and print the table",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			figures, err := readFiles(files)
			if err != nil {
				return err
			}
			if failed := printTable(cmd.OutOrStdout(), goals, figures); failed > 0 {
				return fmt.Errorf("%d of %d figures missed their goal or are missing", failed, len(goals))
			}
			return nil
		},
		SilenceUsage: true,
	}
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}

// cmp is how a measured figure compares with its goal's limit.
type cmp string

const (
	atMost cmp = "≤"
	below  cmp = "<"
)

// goal is one figure: metric unit of benchmark bench must compare with
// limit; also are metrics of the same benchmark shown beside it.
type goal struct {
	figure string
	bench  string
	unit   string
	cmp    cmp
	limit  float64
	also   []string
}

func (g goal) met(v float64) bool {
	switch g.cmp {
	case atMost:
		return v <= g.limit
	case below:
		return v < g.limit
	}
	return false
}

// figures holds every value read, by benchmark base name (without
// GOMAXPROCS) and unit, in the order read.
type figures map[string]map[string][]float64

func (f figures) median(bench, unit string) (float64, bool) {
	values := f[bench][unit]
	if len(values) == 0 {
		return 0, false
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2], true
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2, true
}

func readFiles(files []string) (figures, error) {
	f := figures{}
	for _, name := range files {
		file, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		err = read(f, file, name)
		_ = file.Close()
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// read adds the results of one `go test -bench` output to f. Lines that are
// not results (logs, PASS, ok) are skipped, as benchstat does; a result that
// a log line interrupted is put together again (see rejoin).
func read(f figures, r io.Reader, name string) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	reader := benchfmt.NewReader(strings.NewReader(rejoin(string(raw))), name)
	for reader.Scan() {
		result, ok := reader.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		bench := "Benchmark" + string(result.Name.Base()) // the reader drops the prefix
		if f[bench] == nil {
			f[bench] = map[string][]float64{}
		}
		for _, v := range result.Values {
			unit, value := v.Unit, v.Value
			if v.OrigUnit != "" {
				unit, value = v.OrigUnit, v.OrigValue
			}
			f[bench][unit] = append(f[bench][unit], value)
		}
	}
	if err := reader.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// printTable prints the table of the goals and returns how many failed.
func printTable(w io.Writer, goals []goal, f figures) int {
	failed := 0
	_, _ = fmt.Fprintln(w, "| figure | goal | measured | result |")
	_, _ = fmt.Fprintln(w, "|---|---|---|---|")
	for _, g := range goals {
		goalText := fmt.Sprintf("%s %s", g.cmp, format(g.limit))
		value, ok := f.median(g.bench, g.unit)
		if !ok {
			failed++
			_, _ = fmt.Fprintf(w, "| %s | %s | missing (%s of %s) | FAIL |\n", g.figure, goalText, g.unit, g.bench)
			continue
		}
		measured := format(value)
		var beside []string
		for _, unit := range g.also {
			if v, ok := f.median(g.bench, unit); ok {
				beside = append(beside, fmt.Sprintf("%s %s", unit, format(v)))
			}
		}
		if len(beside) > 0 {
			measured += " (" + strings.Join(beside, ", ") + ")"
		}
		result := "pass"
		if !g.met(value) {
			result = "FAIL"
			failed++
		}
		_, _ = fmt.Fprintf(w, "| %s | %s | %s | %s |\n", g.figure, goalText, measured, result)
	}
	return failed
}

// format prints a figure with three significant digits, and whole numbers
// from 100 on.
func format(v float64) string {
	if v >= 100 || v <= -100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// rejoin puts back together a result line that output written while the
// benchmark ran split: `go test` prints "BenchmarkX-2 " before it runs the
// benchmark and the figures after, so a log line in between leaves the name
// before the log and the figures ("1  9000 ns/op ...") on a line of their own.
func rejoin(output string) string {
	lines := strings.Split(output, "\n")
	pending := "" // the name of a benchmark whose figures have not come yet
	for i, line := range lines {
		fields := strings.Fields(line)
		switch {
		case len(fields) > 0 && strings.HasPrefix(fields[0], "Benchmark") && !strings.Contains(line, " ns/op"):
			pending = fields[0]
			lines[i] = ""
		case pending != "" && len(fields) >= 3 && fields[2] == "ns/op" && isCount(fields[0]) && line != strings.TrimLeft(line, " \t"):
			lines[i] = pending + "\t" + strings.TrimLeft(line, " \t")
			pending = ""
		}
	}
	return strings.Join(lines, "\n")
}

func isCount(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
