package commands

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

type statusOptions struct {
	*globals
	print *genericclioptions.PrintFlags
}

func newStatusCommand(g *globals) *cobra.Command {
	o := &statusOptions{globals: g, print: newPrintFlags()}
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show the last runs of a QuarksJob and what it waits for",
		Long: `Show a QuarksJob's trigger, its runs (the last one and up to ten before
it, as the QuarksJob's status keeps them: trigger, result, start, duration
and message) and what it waits for before it runs again.

With -o json or -o yaml, the QuarksJob itself is printed.`,
		Example: `  # How did the last runs of smoke-tests end?
  kubectl qjob status smoke-tests

  # The whole QuarksJob, status included
  kubectl qjob status smoke-tests -o yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeQuarksJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0])
		},
	}
	o.print.AddFlags(cmd)
	return cmd
}

func (o *statusOptions) run(ctx context.Context, name string) error {
	if err := checkOutputFormat(o.print); err != nil {
		return err
	}
	s, err := o.connect()
	if err != nil {
		return err
	}
	qjob, err := s.getQuarksJob(ctx, name)
	if err != nil {
		return err
	}
	if o.print.OutputFormat != nil && *o.print.OutputFormat != "" {
		return printObject(o.print, qjob, o.streams.Out)
	}
	describe(o.streams.Out, qjob, time.Now())
	return nil
}

// describe writes what status shows of qjob, as of now.
func describe(out io.Writer, qjob *qjv1.QuarksJob, now time.Time) {
	w := printers.GetNewTabWriter(out)
	defer func() { _ = w.Flush() }()
	field := func(name, format string, args ...any) {
		_, _ = fmt.Fprintf(w, "%s:\t%s\n", name, fmt.Sprintf(format, args...))
	}
	field("Name", "%s", qjob.Name)
	field("Namespace", "%s", qjob.Namespace)
	field("Strategy", "%s (%s)", qjob.Spec.Trigger.Strategy, kindOf(qjob))
	field("Runs", "%d", qjob.Status.RunCount)
	field("Waiting for", "%s", waitsFor(qjob))
	if last := qjob.Status.LastRun; last != nil {
		field("Last run", "%d, %s, trigger %s", last.Number, last.Result, last.Trigger)
		if last.Message != "" {
			field("Message", "%s", last.Message)
		}
		if names := writtenSecrets(qjob, last.Number); len(names) > 0 {
			field("Output", "%s", strings.Join(names, ", "))
		}
	}
	runs := qjob.Status.PreviousRuns
	if last := qjob.Status.LastRun; last != nil {
		runs = append([]qjv1.RunSummary{last.Summary()}, runs...)
	}
	if len(runs) == 0 {
		return
	}
	// The table's columns are its own, not the fields'.
	_ = w.Flush()
	w = printers.GetNewTabWriter(out)
	_, _ = fmt.Fprintln(w)
	_, _ = fmt.Fprintln(w, "RUN\tTRIGGER\tRESULT\tSTARTED\tDURATION\tSECRETS\tMESSAGE")
	for _, r := range runs {
		_, _ = fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Number, r.Trigger, r.Result,
			age(r.StartTime, now), took(r, now), r.SecretCount, shorten(r.Message, 80))
	}
}

// kindOf says in words what the strategy makes of the QuarksJob.
func kindOf(qjob *qjv1.QuarksJob) string {
	switch qjob.Spec.Trigger.Strategy {
	case qjv1.StrategyManual:
		return "an errand at rest"
	case qjv1.StrategyNow:
		return "an errand whose run was requested"
	case qjv1.StrategyOnce:
		return "a one-off whose run was requested"
	case qjv1.StrategyDone:
		if qjob.Spec.UpdateOnConfigChange {
			return "a one-off that ran; it runs again when its configuration changes"
		}
		return "a one-off that ran"
	}
	return "unknown"
}

// waitsFor says what has to happen for the QuarksJob to run (again).
func waitsFor(qjob *qjv1.QuarksJob) string {
	if last := qjob.Status.LastRun; last != nil && last.Result == qjv1.RunRunning {
		return fmt.Sprintf("run %d to end (Job %s)", last.Number, last.JobName)
	}
	if held := heldBy(qjob); held != "" {
		return held
	}
	switch qjob.Spec.Trigger.Strategy {
	case qjv1.StrategyNow, qjv1.StrategyOnce:
		return "the controller to accept the trigger"
	case qjv1.StrategyManual:
		return fmt.Sprintf("a trigger: kubectl qjob run %s", qjob.Name)
	case qjv1.StrategyDone:
		if qjob.Spec.UpdateOnConfigChange {
			return fmt.Sprintf("a change of the ConfigMaps or Secrets its pods reference, or: kubectl qjob run %s", qjob.Name)
		}
		return fmt.Sprintf("nothing; kubectl qjob run %s runs it again", qjob.Name)
	}
	return "nothing"
}

// age is how long ago t was, as kubectl prints ages.
func age(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// took is how long the run ran, or has been running.
func took(r qjv1.RunSummary, now time.Time) string {
	if r.StartTime == nil {
		return "-"
	}
	end := now
	if r.CompletionTime != nil {
		end = r.CompletionTime.Time
	}
	return duration.HumanDuration(end.Sub(r.StartTime.Time))
}

// shorten cuts text to a line of at most n runes.
func shorten(text string, n int) string {
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return text
}

// newPrintFlags are kubectl's -o flags for the formats that print objects.
func newPrintFlags() *genericclioptions.PrintFlags {
	return genericclioptions.NewPrintFlags("").WithTypeSetter(scheme)
}

// checkOutputFormat refuses an -o the printers do not know, before anything
// is read from the cluster.
func checkOutputFormat(flags *genericclioptions.PrintFlags) error {
	if flags.OutputFormat == nil || *flags.OutputFormat == "" {
		return nil
	}
	if _, err := flags.ToPrinter(); err != nil {
		return &ExitError{Code: ExitCommandFailed, Err: err}
	}
	return nil
}

// printObject prints obj as -o asks (json, yaml, name, jsonpath=...).
func printObject(flags *genericclioptions.PrintFlags, obj runtime.Object, out io.Writer) error {
	printer, err := flags.ToPrinter()
	if err != nil {
		return &ExitError{Code: ExitCommandFailed, Err: err}
	}
	return printer.PrintObj(obj, out)
}

// list wraps objects for a printer, as kubectl prints several objects.
func list(objects []runtime.Object) *metav1.List {
	l := &metav1.List{TypeMeta: metav1.TypeMeta{Kind: "List", APIVersion: "v1"}}
	for _, o := range objects {
		l.Items = append(l.Items, runtime.RawExtension{Object: o})
	}
	return l
}
