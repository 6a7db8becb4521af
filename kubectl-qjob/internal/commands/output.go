package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

type outputOptions struct {
	*globals
	print      *genericclioptions.PrintFlags
	run        int64
	showValues bool
}

func newOutputCommand(g *globals) *cobra.Command {
	o := &outputOptions{globals: g, print: newPrintFlags()}
	cmd := &cobra.Command{
		Use:   "output NAME [--run N] [--show-values]",
		Short: "List the Secrets a run of a QuarksJob wrote",
		Long: `List the Secrets the newest finished run of the QuarksJob NAME wrote (or run
N with --run), with their keys. Values are masked unless --show-values.

A Secret counts as the run's when the QuarksJob's status records it for
that run, or when it is the QuarksJob's output and annotated with the run
(` + qjv1.AnnotationOutputRun + `). A plain Secret a later run wrote again
belongs to that later run; versioned Secrets keep every run's version until
they are pruned.`,
		Example: `  # The keys of the Secrets the last run of gen-creds wrote
  kubectl qjob output gen-creds

  # Run 3's, with their values
  kubectl qjob output gen-creds --run 3 --show-values

  # As Secret objects (values masked unless --show-values)
  kubectl qjob output gen-creds -o yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeQuarksJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runCommand(cmd.Context(), args[0])
		},
	}
	o.print.AddFlags(cmd)
	cmd.Flags().Int64Var(&o.run, "run", 0, "the run whose output to list; the newest finished run when 0")
	cmd.Flags().BoolVar(&o.showValues, "show-values", false, "print the Secrets' values instead of masking them")
	return cmd
}

func (o *outputOptions) runCommand(ctx context.Context, name string) error {
	if err := checkOutputFormat(o.print); err != nil {
		return err
	}
	if o.run < 0 {
		return &ExitError{Code: ExitCommandFailed, Err: errors.New("--run must be a run number (1 or more)")}
	}
	s, err := o.connect()
	if err != nil {
		return err
	}
	qjob, err := s.getQuarksJob(ctx, name)
	if err != nil {
		return err
	}
	number := o.run
	if number == 0 {
		if number = newestFinishedRun(qjob); number == 0 {
			return &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("quarksjob/%s has no finished run yet (kubectl qjob status %s)", name, name)}
		}
	}
	if number > qjob.Status.RunCount {
		return &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("quarksjob/%s has no run %d: it ran %d times", name, number, qjob.Status.RunCount)}
	}
	secrets, err := s.runSecrets(ctx, qjob, number)
	if err != nil {
		return err
	}
	if o.print.OutputFormat != nil && *o.print.OutputFormat != "" {
		return printObject(o.print, list(asObjects(secrets, o.showValues)), o.streams.Out)
	}
	if len(secrets) == 0 {
		_, _ = fmt.Fprintf(o.streams.Out, "run %d of quarksjob/%s: no Secret it wrote exists%s\n", number, name, outputHint(qjob, number))
		return nil
	}
	if o.showValues {
		printValues(o.streams.Out, secrets)
		return nil
	}
	printSecrets(o.streams.Out, secrets, time.Now(), false)
	return nil
}

// newestFinishedRun is the number of the newest run that ended, or 0.
func newestFinishedRun(qjob *qjv1.QuarksJob) int64 {
	if last := qjob.Status.LastRun; last != nil && last.Result != qjv1.RunRunning {
		return last.Number
	}
	if len(qjob.Status.PreviousRuns) > 0 {
		return qjob.Status.PreviousRuns[0].Number
	}
	return 0
}

// outputHint says why a run may have no Secrets.
func outputHint(qjob *qjv1.QuarksJob, number int64) string {
	if qjob.Spec.Output == nil || len(qjob.Spec.Output.OutputMap) == 0 {
		return " (the QuarksJob declares no output)"
	}
	if last := qjob.Status.LastRun; last != nil && last.Number == number && last.Message != "" {
		return fmt.Sprintf(" (the run's message: %s)", last.Message)
	}
	return " (a later run may have written its plain Secrets again)"
}

// runSecrets are the Secrets run number of qjob wrote that still exist:
// those its record in the status names, and qjob's output annotated with
// the run.
func (s *session) runSecrets(ctx context.Context, qjob *qjv1.QuarksJob, number int64) ([]corev1.Secret, error) {
	all := &corev1.SecretList{}
	if err := s.client.List(ctx, all, client.InNamespace(s.namespace)); err != nil {
		return nil, explain(err, "list", "secrets", s.namespace, "")
	}
	recorded := map[string]bool{}
	if last := qjob.Status.LastRun; last != nil && last.Number == number {
		for _, u := range last.Uploads {
			for _, written := range u.Secrets {
				recorded[written.Name] = true
			}
		}
	}
	var found []corev1.Secret
	for _, secret := range all.Items {
		if recorded[secret.Name] || (isOutputOf(&secret, qjob) && secret.Annotations[qjv1.AnnotationOutputRun] == strconv.FormatInt(number, 10)) {
			found = append(found, secret)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found, nil
}

// isOutputOf reports whether secret is qjob's output: controlled by it, or
// kept after it as the output of a QuarksJob of its name.
func isOutputOf(secret *corev1.Secret, qjob *qjv1.QuarksJob) bool {
	if ref := metav1.GetControllerOf(secret); ref != nil {
		return ref.UID == qjob.UID
	}
	return secret.Annotations[qjv1.AnnotationOutputOf] == qjob.Name
}

// printSecrets writes a table of the Secrets with their keys; withOwner
// adds the QuarksJob that wrote each.
func printSecrets(out io.Writer, secrets []corev1.Secret, now time.Time, withOwner bool) {
	w := printers.GetNewTabWriter(out)
	defer func() { _ = w.Flush() }()
	header := "SECRET\tCONTAINER\tRUN\tKEYS\tAGE"
	if withOwner {
		header = "SECRET\tVERSION\tQUARKSJOB\tRUN\tKEYS\tAGE"
	}
	_, _ = fmt.Fprintln(w, header)
	for _, s := range secrets {
		run := orDash(s.Annotations[qjv1.AnnotationOutputRun])
		keys := shorten(strings.Join(keysOf(s.Data), ","), 60)
		if withOwner {
			_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, orDash(s.Labels[qjv1.LabelSecretVersion]),
				ownerName(&s), run, keys, age(&s.CreationTimestamp, now))
			continue
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, orDash(s.Labels[qjv1.LabelPersistentSecretContainer]),
			run, keys, age(&s.CreationTimestamp, now))
	}
}

// printValues writes each Secret's keys and values.
func printValues(out io.Writer, secrets []corev1.Secret) {
	for i, s := range secrets {
		if i > 0 {
			_, _ = fmt.Fprintln(out)
		}
		_, _ = fmt.Fprintf(out, "secret/%s\n", s.Name)
		for _, k := range keysOf(s.Data) {
			_, _ = fmt.Fprintf(out, "  %s: %s\n", k, s.Data[k])
		}
	}
}

// asObjects returns the Secrets for a printer, their values removed unless
// showValues.
func asObjects(secrets []corev1.Secret, showValues bool) []runtime.Object {
	objects := make([]runtime.Object, 0, len(secrets))
	for i := range secrets {
		s := secrets[i].DeepCopy()
		s.ManagedFields = nil
		if !showValues {
			for k := range s.Data {
				s.Data[k] = nil
			}
		}
		s.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		objects = append(objects, s)
	}
	return objects
}

func keysOf(data map[string][]byte) []string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ownerName is the QuarksJob a Secret is the output of, or "-".
func ownerName(s *corev1.Secret) string {
	if ref := metav1.GetControllerOf(s); ref != nil && ref.Kind == "QuarksJob" {
		return ref.Name
	}
	return orDash(s.Annotations[qjv1.AnnotationOutputOf])
}

// orDash is value, or "-" for none, as kubectl prints an empty cell.
func orDash(value string) string {
	if value == "" {
		return "-"
	}
	return value
}
