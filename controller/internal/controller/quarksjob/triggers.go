package quarksjob

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// accept consumes the trigger in the spec: in one write, checked against the
// resourceVersion, it sets the strategy to next and records the run request.
// A trigger that arrives while a requested run has not started yet joins
// that request: at most one run is pending.
func (r *Reconciler) accept(ctx context.Context, qjob *qjv1.QuarksJob, pending qjv1.RunRequest, requested bool, next qjv1.Strategy, by qjv1.RunTrigger) (qjv1.RunRequest, error) {
	// The newest run is the recorded one, or a requested one whose Job an
	// interrupted reconcile created. Run labels on Jobs are not counted:
	// whoever creates a Job sets them.
	newest := lastNumber(qjob.Status.LastRun)
	if requested && pending.Run > newest {
		// The cache may not show the requested run's Job yet.
		started, err := r.jobExists(ctx, qjob, pending.Run)
		if err != nil {
			return pending, err
		}
		if started {
			newest = pending.Run
		}
	}
	if qjob.Spec.UpdateOnConfigChange {
		// A configuration change starts its run without a record on the
		// QuarksJob: its Job may be too new for the cache.
		for {
			started, err := r.jobExists(ctx, qjob, newest+1)
			if err != nil {
				return pending, err
			}
			if !started {
				break
			}
			newest++
		}
	}
	request := pending
	if !requested || pending.Run <= newest {
		request = qjv1.RunRequest{Run: newest + 1, By: by, At: r.Now()}
	}

	before := qjob.DeepCopy()
	qjob.Spec.Trigger.Strategy = next
	if qjob.Annotations == nil {
		qjob.Annotations = map[string]string{}
	}
	request.Annotate(qjob.Annotations)
	if err := r.Client.Patch(ctx, qjob, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return request, fmt.Errorf("accepting trigger %q: %w", before.Spec.Trigger.Strategy, err)
	}
	return request, nil
}

// detectConfigChange asks for a run of a one-off with updateOnConfigChange
// when the hash of its referenced data differs from the newest run's, and has
// stayed so for the debounce window: it sets obs.configChange. It returns
// when to look again while a change settles.
//
// Unlike the other triggers, a configuration change is not recorded on the
// QuarksJob before its run starts: the data is the record. Every reconcile
// compares it again, so a crash, a restart or a stale cache can neither lose
// the change nor run it twice, and a run costs one QuarksJob write (its
// status) instead of two. A change while a run is active waits for it to
// end, as a pending trigger does.
func (r *Reconciler) detectConfigChange(ctx context.Context, qjob *qjv1.QuarksJob, request qjv1.RunRequest, requested bool, obs *observation) (time.Duration, error) {
	if !qjob.Spec.UpdateOnConfigChange || qjob.Spec.Trigger.Strategy != qjv1.StrategyDone {
		return 0, nil
	}
	newest, newestHash := lastNumber(qjob.Status.LastRun), seenHash(qjob)
	if requested && request.Run > newest {
		// A requested run that has not started yet reads the newest data
		// when it starts.
		return 0, nil
	}
	key := client.ObjectKeyFromObject(qjob)
	in, err := r.readInputs(ctx, qjob, true)
	if err != nil {
		return 0, err
	}
	if newestHash == "" {
		// "done" with no run seen (moved from the original operator, or a
		// lost status): today's data is the baseline, and a change of it
		// runs the job. Recording the baseline runs nothing.
		obs.baseline = in.hash
		return 0, nil
	}
	if in.hash == newestHash {
		r.debounce.forget(key)
		return 0, nil
	}
	if settled, wait := r.debounce.settled(key, in.hash, r.Now(), r.ConfigChangeDebounce); !settled {
		return wait, nil
	}
	obs.configChange = &qjv1.RunRequest{Run: newest + 1, By: qjv1.RunTriggerConfigChange, At: r.Now()}
	return 0, nil
}

// seenHash is the hash of the referenced data the newest run saw, or, before
// any run, the baseline recorded for a one-off that is already done.
func seenHash(qjob *qjv1.QuarksJob) string {
	if last := qjob.Status.LastRun; last != nil && last.InputsHash != "" {
		return last.InputsHash
	}
	return qjob.Status.InputsHash
}

// configChangeStillDue checks the configuration change a reconcile detected
// against the QuarksJob read from the API server: it is still a one-off that
// runs on configuration changes, and its run is the next one.
func configChangeStillDue(qjob *qjv1.QuarksJob, obs *observation) bool {
	if !qjob.Spec.UpdateOnConfigChange || qjob.Spec.Trigger.Strategy != qjv1.StrategyDone {
		return false
	}
	return obs.configChange.Run == lastNumber(qjob.Status.LastRun)+1
}
