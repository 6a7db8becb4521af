// Package quarksjob holds the QuarksJob reconciler: it accepts triggers,
// starts each run's Job, follows it to its end, cleans up, and reports.
package quarksjob

import (
	"context"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
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
	"code.cloudfoundry.org/quarks-job/controller/internal/metrics"
	"code.cloudfoundry.org/quarks-job/controller/internal/references"
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
// cached object and every copy of it larger; only the Jobs that carry the qjob-name label (a
// run's Jobs, and forgeries of them, which the admission policy refuses): a tenant's other Jobs,
// however large, cost the controller nothing; and, when namespaces are given, only those
// namespaces watched.
func CacheOptions(namespaces []string) cache.Options {
	options := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&batchv1.Job{}: {Label: runJobSelector()}},
	}
	if len(namespaces) > 0 {
		options.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			options.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return options
}

// runJobSelector selects the Jobs that claim to be a QuarksJob's run.
func runJobSelector() labels.Selector {
	claims, err := labels.NewRequirement(qjv1.LabelQJobName, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant, valid label key
	}
	return labels.NewSelector().Add(*claims)
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

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=list

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=patch

// report emits the Events and metrics of the run transitions a status write
// recorded. It runs after the write, so a retried reconcile does not repeat them.
func (r *Reconciler) report(before, after *qjv1.QuarksJob) {
	for _, t := range transitions(before.Status.LastRun, after.Status.LastRun) {
		switch t.result {
		case qjv1.RunRunning:
			metrics.RunsStarted.WithLabelValues(string(t.run.Trigger)).Inc()
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, qjv1.EventRunStarted, "StartRun", "run %d started Job %s (trigger %s)", t.run.Number, t.run.JobName, t.run.Trigger)
		case qjv1.RunSucceeded:
			metrics.RunsFinished.WithLabelValues(string(t.run.Trigger), string(t.result)).Inc()
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, qjv1.EventRunSucceeded, "FinishRun", "run %d succeeded: %s", t.run.Number, t.run.Message)
		case qjv1.RunFailed:
			metrics.RunsFinished.WithLabelValues(string(t.run.Trigger), string(t.result)).Inc()
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, qjv1.EventRunFailed, "FinishRun", "run %d failed: %s", t.run.Number, t.run.Message)
		}
	}
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
