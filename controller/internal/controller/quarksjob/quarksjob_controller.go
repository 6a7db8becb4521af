// Package quarksjob holds the QuarksJob reconciler: it accepts triggers,
// starts each run's Job, follows it to its end, cleans up, and reports.
package quarksjob

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/validation"
	"code.cloudfoundry.org/quarks-job/controller/internal/metrics"
	"code.cloudfoundry.org/quarks-job/controller/internal/references"
	"code.cloudfoundry.org/quarks-job/controller/internal/runs"
	"code.cloudfoundry.org/quarks-job/controller/internal/trigger"
)

// jobOwnerIndex indexes Jobs by the name of the QuarksJob that controls them.
const jobOwnerIndex = ".metadata.controller.quarksjob"

// Reconciler reconciles QuarksJobs.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server, for the few decisions a stale
	// cache must not make: starting a run, and declaring a Job gone.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// ConfigChangeDebounce is how long the referenced configuration must
	// stay unchanged before a change starts a run, so that a burst of
	// changes makes one run.
	ConfigChangeDebounce time.Duration
	// NamespaceSelector, when not nil, limits the QuarksJobs acted on to
	// namespaces whose labels it matches (the original's
	// quarks.cloudfoundry.org/monitored label, for example).
	NamespaceSelector labels.Selector
	// RunStartTimeout is how long a run's pods may take to start (be
	// created, scheduled, pull their images); a run none of whose pods
	// started by then fails with the reason the API gives. 0 means
	// DefaultRunStartTimeout.
	RunStartTimeout time.Duration
	// PersisterImage is the persister image the webhook injects; a pod of
	// a run must run one of its repository (runpod.Check). "" accepts any.
	PersisterImage string
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	digests  digests
	debounce debouncer
	// foreignJobs holds the UIDs of Jobs already reported as not the
	// controller's, so each is reported once.
	foreignJobs sync.Map
}

// CacheOptions are the options of the manager's cache the reconciler and the
// output endpoint read from: managed fields dropped, as they are never read and would make every
// cached object and every copy of it larger; and, when namespaces are given,
// only those namespaces watched.
func CacheOptions(namespaces []string) cache.Options {
	options := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if len(namespaces) > 0 {
		options.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			options.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return options
}

// SetupWithManager registers the reconciler and the Job index it needs.
func (r *Reconciler) SetupWithManager(mgr manager.Manager, options controller.Options) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &batchv1.Job{}, jobOwnerIndex, func(o client.Object) []string {
		owner := metav1.GetControllerOf(o)
		if owner == nil || owner.Kind != "QuarksJob" || owner.APIVersion != qjv1.GroupVersion.String() {
			return nil
		}
		return []string{owner.Name}
	})
	if err != nil {
		return fmt.Errorf("indexing Jobs by QuarksJob: %w", err)
	}
	err = mgr.GetFieldIndexer().IndexField(context.Background(), &qjv1.QuarksJob{}, referenceIndex, func(o client.Object) []string {
		return referenceKeys(o.(*qjv1.QuarksJob))
	})
	if err != nil {
		return fmt.Errorf("indexing QuarksJobs by the objects they reference: %w", err)
	}
	// Secrets and ConfigMaps are watched as metadata only: the data of the
	// referenced ones is read when their resourceVersion changes.
	return builder.ControllerManagedBy(mgr).
		For(&qjv1.QuarksJob{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.readersOf(references.Secret)), builder.OnlyMetadata).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.readersOf(references.ConfigMap)), builder.OnlyMetadata).
		WithOptions(options).
		Complete(r)
}

// readersOf maps a changed Secret or ConfigMap to the QuarksJobs that read it.
func (r *Reconciler) readersOf(kind references.Kind) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var requests []reconcile.Request
		for _, key := range keysFor(kind, o.GetName()) {
			list := &qjv1.QuarksJobList{}
			if err := r.Client.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{referenceIndex: key}); err != nil {
				log.FromContext(ctx).Error(err, "finding the QuarksJobs that read an object", "kind", kind, "name", o.GetName())
				continue
			}
			for _, q := range list.Items {
				requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&q)})
			}
		}
		return requests
	}
}

// +kubebuilder:rbac:groups=quarks.cloudfoundry.org,resources=quarksjobs,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=quarks.cloudfoundry.org,resources=quarksjobs/status,verbs=patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile fetches the QuarksJob and its Jobs, accepts a trigger, starts the
// requested run when none is active, deletes finished Jobs whose record is
// in the status, and writes the status once.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	qjob := &qjv1.QuarksJob{}
	if err := r.Client.Get(ctx, req.NamespacedName, qjob); err != nil {
		if apierrors.IsNotFound(err) {
			r.debounce.forget(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !qjob.DeletionTimestamp.IsZero() {
		// The garbage collector deletes the Jobs with their owner.
		return reconcile.Result{}, nil
	}
	if watched, err := r.Watches(ctx, qjob.Namespace); err != nil || !watched {
		return reconcile.Result{}, err
	}
	jobs, err := r.jobsOf(ctx, qjob)
	if err != nil {
		return reconcile.Result{}, err
	}

	request, requested, err := qjv1.RunRequestOf(qjob.Annotations)
	if err != nil {
		log.FromContext(ctx).Error(err, "ignoring a damaged run request")
	}
	// fresh is true when qjob, status included, is known to be current: it
	// came back from a write that checked its resourceVersion.
	fresh := false
	if next, by, fires := trigger.Accept(qjob.Spec.Trigger.Strategy); fires {
		request, err = r.accept(ctx, qjob, request, requested, next, by)
		if apierrors.IsConflict(err) {
			return retrySoon, nil
		}
		if err != nil {
			return reconcile.Result{}, err
		}
		requested, fresh = true, true
	}
	obs := observation{jobs: jobs}
	recheck, err := r.detectConfigChange(ctx, qjob, request, requested, &obs)
	if err != nil {
		return reconcile.Result{}, err
	}
	if change := obs.configChange; change != nil {
		request, requested = *change, true
	}

	if err := r.lookForLastJob(ctx, qjob, &obs); err != nil {
		return reconcile.Result{}, err
	}
	startCheck, err := r.checkStarted(ctx, qjob, &obs)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.proveCompletion(ctx, qjob, &obs); err != nil {
		return reconcile.Result{}, err
	}
	recheck = soonest(recheck, startCheck)
	if requested && idle(qjob.Status.LastRun) && request.Run > lastNumber(qjob.Status.LastRun) {
		if err := r.start(ctx, qjob, fresh, &obs); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.cleanup(ctx, qjob, &obs); err != nil {
		return reconcile.Result{}, err
	}
	r.warnForeignJobs(qjob, &obs)

	now := metav1.NewTime(r.Now())
	status := computeStatus(qjob, obs, now)
	recheck = soonest(recheck, awaitRecheck(&status, &obs, now))
	if equality.Semantic.DeepEqual(status, qjob.Status) {
		return reconcile.Result{RequeueAfter: recheck}, r.settleJob(ctx, qjob, &obs)
	}
	before := qjob.DeepCopy()
	status.LastReconcile = &metav1.Time{Time: r.Now().Truncate(time.Second)}
	qjob.Status = status
	err = r.Client.Status().Patch(ctx, qjob, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsConflict(err) {
		return retrySoon, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("writing status: %w", err)
	}
	r.report(before, qjob)
	return reconcile.Result{RequeueAfter: recheck}, r.settleJob(ctx, qjob, &obs)
}

// warnForeignJobs reports the running Jobs that claim this QuarksJob as
// controller but are no run of its: neither recorded nor started now. (A
// suspended one may be the controller's own from an interrupted reconcile;
// it runs nothing, and the next start proves or refuses it.)
func (r *Reconciler) warnForeignJobs(qjob *qjv1.QuarksJob, obs *observation) {
	last := qjob.Status.LastRun
	if last != nil && last.JobUID == "" {
		// Written before UIDs were recorded: older runs' Jobs are not told
		// apart from foreign ones.
		return
	}
	for i := range obs.jobs {
		job := &obs.jobs[i]
		switch {
		case last != nil && isRecorded(job, last):
		case obs.started != nil && obs.started.job.UID == job.UID:
		case job.Spec.Suspend != nil && *job.Spec.Suspend:
		default:
			r.warnForeignJob(qjob, job, "its UID is not recorded in the QuarksJob's status")
		}
	}
}

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Watches reports whether the QuarksJobs of a namespace are the operator's
// to run, by the namespace selector.
func (r *Reconciler) Watches(ctx context.Context, namespace string) (bool, error) {
	if r.NamespaceSelector == nil {
		return true, nil
	}
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return r.NamespaceSelector.Matches(labels.Set(ns.Labels)), nil
}

// retrySoon is the answer to a conflict: the object changed under us, so the
// cache is about to deliver the newer version; try again then.
var retrySoon = reconcile.Result{RequeueAfter: 200 * time.Millisecond}

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

// start creates the requested run's Job. It decides on current data: unless
// qjob came back from a checked write in this reconcile, it is read again
// from the API server, because a stale status could show a run that already
// finished (and whose Job was deleted) as not yet started.
func (r *Reconciler) start(ctx context.Context, qjob *qjv1.QuarksJob, fresh bool, obs *observation) error {
	if !fresh {
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(qjob), qjob); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	last := qjob.Status.LastRun
	if !idle(last) {
		return nil
	}
	var change *qjv1.RunRequest
	if obs.configChange != nil && configChangeStillDue(qjob, obs) {
		change = obs.configChange
	}
	request, configChange, ok := pendingRun(qjob, change, lastNumber(last))
	if !ok {
		return nil
	}

	in, err := r.readInputs(ctx, qjob, true)
	if err != nil {
		return err
	}
	if next := lastNumber(last) + 1; request.Run > next {
		// An interrupted reconcile may have created run next's Job and not
		// recorded it: that run comes first.
		var skipped bool
		if skipped, err = r.recoverRun(ctx, qjob, next, in, obs); err != nil || !skipped {
			return err
		}
	}
	if configChange && in.hash == seenHash(qjob) {
		// The data went back to what the newest run saw.
		return nil
	}
	if len(in.missing) > 0 {
		// Held until they exist; their creation brings the QuarksJob back.
		obs.waitingFor = in.missing
		return nil
	}
	run := runs.Run{Number: request.Run, By: request.By, InputsHash: in.hash, Renames: in.renames}
	defaulted := qjob.DeepCopy()
	validation.Default(defaulted)
	if errs := validation.QuarksJob(defaulted); len(errs) > 0 {
		// Admitted without the webhook's check (it was down, or the
		// QuarksJob is older than a rule): the run fails with the message
		// admission would have given, and the request is consumed.
		obs.startFailure = &startFailure{run: run, jobName: runs.JobName(qjob.Name, run.Number),
			reason: "the QuarksJob is invalid, no Job was created: " + apierrors.NewInvalid(
				qjv1.GroupVersion.WithKind("QuarksJob").GroupKind(), qjob.Name, errs).Error()}
		return nil
	}
	job, err := runs.NewJob(qjob, run)
	adopted := false
	if err == nil {
		err = r.Client.Create(ctx, job)
		if apierrors.IsAlreadyExists(err) {
			job, adopted, err = r.nameTaken(ctx, qjob, job)
		}
	}
	switch {
	case err == nil:
		obs.jobs = append(obs.jobs, *job)
		obs.started = &startedRun{run: run, job: job}
		if !request.At.IsZero() && !adopted {
			metrics.TriggerToJob.WithLabelValues(string(request.By)).Observe(r.Now().Sub(request.At).Seconds())
		}
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err):
		// Retrying cannot help: the run fails, and the request is consumed.
		obs.startFailure = &startFailure{run: run, jobName: job.Name, reason: "the Job could not be created: " + err.Error()}
	default:
		return fmt.Errorf("creating Job %s: %w", job.Name, err)
	}
	return nil
}

// recoverRun looks for run n's Job when a later run is requested: an
// interrupted reconcile may have created it without recording it. When the
// Job is there and provably the controller's (runs.Unrecorded), it becomes
// the started run. It returns skipped when run n has no Job of the
// controller's, so the requested run may start.
func (r *Reconciler) recoverRun(ctx context.Context, qjob *qjv1.QuarksJob, n int64, in inputs, obs *observation) (skipped bool, err error) {
	jobs, err := r.runJobs(ctx, qjob, n)
	if err != nil {
		return false, err
	}
	for i := range jobs {
		existing := &jobs[i]
		by := qjv1.RunTrigger(existing.Annotations[qjv1.AnnotationRunTrigger])
		if by != qjv1.RunTriggerNow && by != qjv1.RunTriggerOnce {
			by = qjv1.RunTriggerConfigChange
		}
		run := runs.Run{Number: n, By: by, InputsHash: existing.Annotations[qjv1.AnnotationInputsHash], Renames: in.renames}
		expected, err := runs.NewJob(qjob, run)
		if err != nil {
			return false, err
		}
		if why := runs.Unrecorded(existing, expected, qjob.UID); why != "" {
			r.warnForeignJob(qjob, existing, why)
			continue
		}
		obs.jobs = append(obs.jobs, *existing)
		obs.started = &startedRun{run: run, job: existing}
		return false, nil
	}
	return true, nil
}

// nameTaken is start's answer when the name of the run's Job (runs.JobName)
// is taken: an interrupted reconcile created the Job and did not record it,
// or someone else took the name, which anyone who may create Jobs can do
// for every run to come. The controller's Job of the run, whatever its
// name, is adopted; else the taker's Job is reported (an Event) and left
// alone, and the run's Job is created under a name the API server draws at
// random (runs.GeneratedJobNamePrefix), which no one can take beforehand.
func (r *Reconciler) nameTaken(ctx context.Context, qjob *qjv1.QuarksJob, job *batchv1.Job) (_ *batchv1.Job, adopted bool, _ error) {
	n, err := strconv.ParseInt(job.Labels[qjv1.LabelRun], 10, 64)
	if err != nil {
		return job, false, fmt.Errorf("run label of Job %s: %w", job.Name, err)
	}
	mine, err := r.runJobs(ctx, qjob, n)
	if err != nil {
		return job, false, err
	}
	for i := range mine {
		if runs.Unrecorded(&mine[i], job, qjob.UID) == "" {
			return &mine[i], true, nil
		}
	}
	taken := &batchv1.Job{}
	switch err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(job), taken); {
	case err == nil:
		r.warnForeignJob(qjob, taken, runs.Unrecorded(taken, job, qjob.UID))
	case !apierrors.IsNotFound(err):
		return job, false, err
	}
	job.GenerateName, job.Name = runs.GeneratedJobNamePrefix(qjob.Name, n), ""
	return job, false, r.Client.Create(ctx, job)
}

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=list

// runJobs lists, from the API server, the Jobs that qjob controls and that
// are labeled as its run n: run n's Job has the derived name, or a random
// one when that was taken (nameTaken), so a name proves nothing either way.
// A decision to create a run's Job is never made on a stale cache.
func (r *Reconciler) runJobs(ctx context.Context, qjob *qjv1.QuarksJob, n int64) ([]batchv1.Job, error) {
	list := &batchv1.JobList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(qjob.Namespace),
		client.MatchingLabels{qjv1.LabelQJobName: runs.LabelValue(qjob.Name), qjv1.LabelRun: strconv.FormatInt(n, 10)}); err != nil {
		return nil, fmt.Errorf("listing the Jobs of run %d: %w", n, err)
	}
	jobs := list.Items[:0]
	for _, job := range list.Items {
		if ownedBy(&job, qjob) {
			jobs = append(jobs, job)
		}
	}
	return jobs, nil
}

// warnForeignJob reports, once per Job, a Job that claims to be a run of
// qjob but that the controller did not create. It is left alone.
func (r *Reconciler) warnForeignJob(qjob *qjv1.QuarksJob, job *batchv1.Job, why string) {
	if _, seen := r.foreignJobs.LoadOrStore(job.UID, struct{}{}); seen {
		return
	}
	r.Recorder.Eventf(qjob, job, corev1.EventTypeWarning, "ForeignJob", "IgnoreJob",
		"Job %s claims to be a run of this QuarksJob, but this controller did not create it (%s); it is ignored and left alone", job.Name, why)
}

// lookForLastJob makes sure obs holds the Job of the run the status shows
// running. When the cache lacks it, the API server decides whether the Job
// is gone (deleted by someone) or merely not in the cache yet.
func (r *Reconciler) lookForLastJob(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) error {
	last := qjob.Status.LastRun
	if last == nil || last.Result != qjv1.RunRunning || obs.recordedJob(last) != nil {
		return nil
	}
	job := &batchv1.Job{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: qjob.Namespace, Name: last.JobName}, job)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && !isRecorded(job, last)):
		obs.lastJobGone = true
		return nil
	case err != nil:
		return err
	}
	obs.jobs = append(obs.jobs, *job)
	return nil
}

// isRecorded reports whether job is the recorded run's Job: the one whose
// UID the record holds. A run that never started (its Job could not be
// created) has no Job. Records written by earlier versions, before UIDs
// were recorded, name their Job.
func isRecorded(job *batchv1.Job, run *qjv1.Run) bool {
	switch {
	case run.JobUID != "":
		return job.UID == run.JobUID
	case run.StartTime == nil:
		return false
	default:
		return job.Name == run.JobName
	}
}

// cleanup deletes the recorded run's Job once the record holds its result:
// when it succeeded, or when a newer run started (a failed run's Job stays
// for inspection until then). Only that Job is deleted, by its UID: Jobs the
// controller did not create are left alone.
func (r *Reconciler) cleanup(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) error {
	recorded := qjob.Status.LastRun
	if recorded == nil || recorded.Result == qjv1.RunRunning {
		return nil
	}
	if recorded.Result != qjv1.RunSucceeded && obs.started == nil {
		return nil
	}
	for i := range obs.jobs {
		job := &obs.jobs[i]
		if !isRecorded(job, recorded) || !job.DeletionTimestamp.IsZero() {
			continue
		}
		err := r.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &job.UID})
		if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting Job %s of a finished run: %w", job.Name, err)
		}
	}
	return nil
}

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=patch

// settleJob makes the recorded run's Job match the record. It resumes the
// Job of a running run, which the controller created suspended: its pods
// start only once the QuarksJob's status holds the Job's UID, so every
// upload from them can be checked against it. It suspends the Job of a run
// that ended while its Job had not (its pods never started): nothing of an
// ended run goes on.
func (r *Reconciler) settleJob(ctx context.Context, qjob *qjv1.QuarksJob, obs *observation) error {
	last := qjob.Status.LastRun
	if last == nil || last.JobUID == "" {
		return nil
	}
	job := obs.recordedJob(last)
	if job == nil || !job.DeletionTimestamp.IsZero() {
		return nil
	}
	suspended := job.Spec.Suspend != nil && *job.Spec.Suspend
	var want bool
	switch {
	case last.Result == qjv1.RunRunning && suspended:
		want = false
	case last.Result != qjv1.RunRunning && !suspended && runs.OutcomeOf(job, nil).Result == qjv1.RunRunning:
		want = true
	default:
		return nil
	}
	err := r.Client.Patch(ctx, job, suspendPatch(job, want))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("setting suspend=%t on Job %s of run %d: %w", want, job.Name, last.Number, err)
	}
	return nil
}

// suspendPatch sets spec.suspend of job, only if it is still the same Job
// (its UID): a Job of the same name created meanwhile is someone else's.
func suspendPatch(job *batchv1.Job, suspend bool) client.Patch {
	return client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"suspend":%t}}`, job.UID, suspend))
}

// report emits the Events and metrics of the run transitions a status write
// recorded. It runs after the write, so a retried reconcile does not repeat them.
func (r *Reconciler) report(before, after *qjv1.QuarksJob) {
	for _, t := range transitions(before.Status.LastRun, after.Status.LastRun) {
		switch t.result {
		case qjv1.RunRunning:
			metrics.RunsStarted.WithLabelValues(string(t.run.Trigger)).Inc()
			r.Recorder.Eventf(after, nil, "Normal", "RunStarted", "StartRun", "run %d started Job %s (trigger %s)", t.run.Number, t.run.JobName, t.run.Trigger)
		case qjv1.RunSucceeded:
			metrics.RunsFinished.WithLabelValues(string(t.run.Trigger), string(t.result)).Inc()
			r.Recorder.Eventf(after, nil, "Normal", "RunSucceeded", "FinishRun", "run %d succeeded: %s", t.run.Number, t.run.Message)
		case qjv1.RunFailed:
			metrics.RunsFinished.WithLabelValues(string(t.run.Trigger), string(t.result)).Inc()
			r.Recorder.Eventf(after, nil, "Warning", "RunFailed", "FinishRun", "run %d failed: %s", t.run.Number, t.run.Message)
		}
	}
}

func (r *Reconciler) jobsOf(ctx context.Context, qjob *qjv1.QuarksJob) ([]batchv1.Job, error) {
	list := &batchv1.JobList{}
	if err := r.Client.List(ctx, list, client.InNamespace(qjob.Namespace), client.MatchingFields{jobOwnerIndex: qjob.Name}); err != nil {
		return nil, fmt.Errorf("listing Jobs: %w", err)
	}
	jobs := list.Items[:0]
	for _, job := range list.Items {
		if ownedBy(&job, qjob) {
			jobs = append(jobs, job)
		}
	}
	return jobs, nil
}

// jobExists reports whether run n of qjob has a Job that qjob controls.
func (r *Reconciler) jobExists(ctx context.Context, qjob *qjv1.QuarksJob, n int64) (bool, error) {
	jobs, err := r.runJobs(ctx, qjob, n)
	return len(jobs) > 0, err
}

func ownedBy(job *batchv1.Job, qjob *qjv1.QuarksJob) bool {
	owner := metav1.GetControllerOf(job)
	return owner != nil && owner.UID == qjob.UID
}

// idle reports whether the recorded newest run has finished.
func idle(last *qjv1.Run) bool {
	return last == nil || last.Result != qjv1.RunRunning
}

func lastNumber(last *qjv1.Run) int64 {
	if last == nil {
		return 0
	}
	return last.Number
}
