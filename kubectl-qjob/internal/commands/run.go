package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/kubectl-qjob/internal/console"
)

type runOptions struct {
	*globals
	wait    bool
	logs    bool
	timeout time.Duration
}

func newRunCommand(g *globals) *cobra.Command {
	o := &runOptions{globals: g}
	cmd := &cobra.Command{
		Use:   "run NAME [--wait] [--logs] [--timeout DURATION]",
		Short: "Run an errand, or a one-off again, and wait for its result",
		Long: `Run the QuarksJob NAME: an errand (strategy manual) is set to "now", a
one-off that ran (strategy done) is set to "once". A run already requested
is not requested twice: the command waits for it.

With --wait (implied by --logs) the command waits for the run to end and
exits with its result: 0 when it succeeded, 1 when it failed (its message
and the end of the failing containers' logs are printed), 3 when --timeout
passed first, 130 when interrupted. The run goes on after a timeout or an
interrupt; the command prints how to follow it.`,
		Example: `  # Run the errand smoke-tests and return at once
  kubectl qjob run smoke-tests

  # Run it, stream its containers' logs, and exit with its result
  kubectl qjob run smoke-tests --logs

  # Give up waiting after 10 minutes
  kubectl qjob run smoke-tests --wait --timeout 10m`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeQuarksJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.wait, "wait", false, "wait for the run to end and exit with its result")
	f.BoolVar(&o.logs, "logs", false, "stream the logs of the run's containers while it runs (implies --wait)")
	f.DurationVar(&o.timeout, "timeout", 0, "how long to wait for the run, e.g. 30s or 10m; 0 waits until it ends")
	return cmd
}

func (o *runOptions) run(ctx context.Context, name string) error {
	if o.timeout < 0 {
		return &ExitError{Code: ExitCommandFailed, Err: errors.New("--timeout may not be negative")}
	}
	s, err := o.connect()
	if err != nil {
		return err
	}
	con := console.New(o.streams.Out, o.streams.ErrOut)
	before, strategy, err := s.requestRun(ctx, name)
	if err != nil {
		return err
	}
	switch strategy {
	case "":
		con.Note("quarksjob/%s: a run was already requested; not requesting another", name)
	default:
		con.Note("quarksjob/%s: run requested (trigger.strategy=%s)", name, strategy)
	}
	if !o.wait && !o.logs {
		con.Note("Follow it with: kubectl qjob status %s -n %s", name, s.namespace)
		return nil
	}

	waitCtx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	w := &runWait{session: s, name: name, before: before, con: con, logs: o.logs}
	con.Start()
	result, err := w.wait(waitCtx)
	w.stopLogs(err == nil)
	con.Stop()
	if err != nil {
		return o.notEnded(ctx, waitCtx, s, w, err)
	}
	return w.report(ctx, result)
}

// notEnded explains why the command stops before the run ended.
func (o *runOptions) notEnded(ctx, waitCtx context.Context, s *session, w *runWait, err error) error {
	follow := fmt.Sprintf("kubectl qjob status %s -n %s", w.name, s.namespace)
	if w.jobUID != "" {
		follow += fmt.Sprintf("\n  kubectl logs -n %s -f --all-containers --prefix -l batch.kubernetes.io/controller-uid=%s", s.namespace, w.jobUID)
	}
	what := "the run"
	if w.number > 0 {
		what = fmt.Sprintf("run %d", w.number)
	}
	switch {
	case ctx.Err() != nil:
		return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted; %s of quarksjob/%s goes on. Follow it with:\n  %s", what, w.name, follow)}
	case waitCtx.Err() != nil:
		return &ExitError{Code: ExitTimeout, Err: fmt.Errorf("timed out after %s waiting for %s of quarksjob/%s; it goes on. Follow it with:\n  %s", o.timeout, what, w.name, follow)}
	}
	return err
}

// requestRun sets the strategy that requests a run and returns the newest
// run requested before, and the strategy set ("" when a run was already
// requested). The update is conditional on the QuarksJob's resourceVersion,
// so a concurrent change (the controller accepting a trigger) is seen, never
// overwritten.
func (s *session) requestRun(ctx context.Context, name string) (before int64, strategy qjv1.Strategy, err error) {
	for range 5 {
		qjob, err := s.getQuarksJob(ctx, name)
		if err != nil {
			return 0, "", err
		}
		before := requestedRun(qjob)
		var next qjv1.Strategy
		switch qjob.Spec.Trigger.Strategy {
		case qjv1.StrategyNow, qjv1.StrategyOnce:
			// Requested, not yet accepted: the run this command waits for.
			return before, "", nil
		case qjv1.StrategyManual:
			next = qjv1.StrategyNow
		case qjv1.StrategyDone:
			next = qjv1.StrategyOnce
		default:
			return 0, "", &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("quarksjob/%s has trigger.strategy %q, which no run can be requested from", name, qjob.Spec.Trigger.Strategy)}
		}
		patch := client.MergeFromWithOptions(qjob.DeepCopy(), client.MergeFromWithOptimisticLock{})
		qjob.Spec.Trigger.Strategy = next
		err = s.client.Patch(ctx, qjob, patch)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return 0, "", explain(err, "patch", "quarksjobs", s.namespace, name)
		}
		return before, next, nil
	}
	return 0, "", &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("quarksjob/%s kept changing while the run was requested; try again", name)}
}

// requestedRun is the number of the newest run requested of qjob.
func requestedRun(qjob *qjv1.QuarksJob) int64 {
	n := qjob.Status.RunCount
	if r, ok, err := qjv1.RunRequestOf(qjob.Annotations); ok && err == nil {
		n = max(n, r.Run)
	}
	return n
}

// runWait follows one run of a QuarksJob until it ends.
type runWait struct {
	*session
	name   string
	before int64
	con    *console.Console
	logs   bool

	// number is the run's number, once the controller accepted the trigger.
	number int64
	// jobUID is the run's Job, once it was created.
	jobUID    string
	follower  *logFollower
	qjob      *qjv1.QuarksJob
	startedAt time.Time
}

// wait returns the record of the run once it ended.
func (w *runWait) wait(ctx context.Context) (*qjv1.RunSummary, error) {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := &qjv1.QuarksJobList{}
			err := w.client.List(ctx, list, w.byName(opts))
			return list, explain(err, "list", "quarksjobs", w.namespace, "")
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			watcher, err := w.client.Watch(ctx, &qjv1.QuarksJobList{}, w.byName(opts))
			return watcher, explain(err, "watch", "quarksjobs", w.namespace, "")
		},
	}
	var result *qjv1.RunSummary
	_, err := watchtools.UntilWithSync(ctx, lw, &qjv1.QuarksJob{}, nil, func(event watch.Event) (bool, error) {
		if event.Type == watch.Deleted {
			return false, &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("quarksjob/%s was deleted while its run was awaited", w.name)}
		}
		qjob, ok := event.Object.(*qjv1.QuarksJob)
		if !ok {
			return false, nil
		}
		w.qjob = qjob
		result = w.observe(ctx, qjob)
		return result != nil, nil
	})
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return result, err
}

func (w *runWait) byName(opts metav1.ListOptions) *client.ListOptions {
	return &client.ListOptions{
		Namespace:     w.namespace,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", w.name),
		Raw:           &opts,
	}
}

// observe reports the progress qjob shows and returns the run's record once
// it ended.
func (w *runWait) observe(ctx context.Context, qjob *qjv1.QuarksJob) *qjv1.RunSummary {
	if w.number == 0 {
		requested := requestedRun(qjob)
		if requested <= w.before {
			w.con.Progress("quarksjob/%s: waiting for the controller to accept the trigger", w.name)
			return nil
		}
		w.number = requested
	}
	last := qjob.Status.LastRun
	switch {
	case last == nil || last.Number < w.number:
		w.con.Progress("run %d: %s", w.number, waitingFor(qjob))
		return nil
	case last.Number > w.number:
		for _, r := range qjob.Status.PreviousRuns {
			if r.Number == w.number {
				return &r
			}
		}
		return &qjv1.RunSummary{Number: w.number, Result: qjv1.RunFailed,
			Message: fmt.Sprintf("run %d is no longer recorded: run %d started since", w.number, last.Number)}
	}
	if last.JobUID != "" && w.jobUID == "" {
		w.jobUID = string(last.JobUID)
		w.startedAt = time.Now()
		if w.logs {
			w.follower = newLogFollower(ctx, w.session, w.con, w.jobUID, declaredContainers(qjob))
			go w.follower.run()
		}
	}
	if last.Result == qjv1.RunRunning {
		w.con.Progress("run %d: running (Job %s)", w.number, last.JobName)
		return nil
	}
	summary := last.Summary()
	summary.Message = last.Message // the whole message, not the history's cut
	return &summary
}

// stopLogs lets the log streams drain once the run ended (their containers
// ended too), then stops them.
func (w *runWait) stopLogs(ended bool) {
	if w.follower == nil {
		return
	}
	if ended {
		w.follower.drain(10 * time.Second)
	}
	w.follower.stop()
}

// waitingFor says what a requested run that has not started waits for.
func waitingFor(qjob *qjv1.QuarksJob) string {
	if held := heldBy(qjob); held != "" {
		return strings.TrimSuffix(held, ".")
	}
	return "waiting for the controller to start it"
}

// heldBy is the message of the condition that holds a requested run
// (missing references, or an active run), or "".
func heldBy(qjob *qjv1.QuarksJob) string {
	for _, t := range []string{qjv1.ConditionWaitingForReferences, qjv1.ConditionRunPending} {
		if c := meta.FindStatusCondition(qjob.Status.Conditions, t); c != nil && c.Status == metav1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

// report prints how the run ended and returns the exit code for it.
func (w *runWait) report(ctx context.Context, run *qjv1.RunSummary) error {
	took := ""
	if run.StartTime != nil && run.CompletionTime != nil {
		took = " in " + run.CompletionTime.Sub(run.StartTime.Time).Round(time.Second).String()
	}
	if run.Result == qjv1.RunSucceeded {
		w.con.Println("run %d of quarksjob/%s succeeded%s: %s", run.Number, w.name, took, run.Message)
		if names := writtenSecrets(w.qjob, run.Number); len(names) > 0 {
			w.con.Println("output: %s (kubectl qjob output %s -n %s)", strings.Join(names, ", "), w.name, w.namespace)
		}
		return nil
	}
	w.con.Println("run %d of quarksjob/%s failed%s: %s", run.Number, w.name, took, run.Message)
	if !w.logs && w.jobUID != "" {
		w.printFailedLogs(ctx)
	}
	return &ExitError{Code: ExitRunFailed}
}

// writtenSecrets lists the Secrets the recorded run number wrote, as its
// upload records name them.
func writtenSecrets(qjob *qjv1.QuarksJob, number int64) []string {
	last := qjob.Status.LastRun
	if last == nil || last.Number != number {
		return nil
	}
	var names []string
	more := 0
	for _, u := range last.Uploads {
		for _, s := range u.Secrets {
			names = append(names, s.Name)
		}
		more += u.WrittenSecrets() - len(u.Secrets)
	}
	if more > 0 {
		names = append(names, fmt.Sprintf("and %d more", more))
	}
	return names
}
