package quarksjob

import (
	"context"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// startReplica runs one replica of the operator with leader election, as
// the chart does (--leader-elect, lease released when a replica stops), with
// short lease timings. It returns the replica and a channel closed once it
// leads.
func startReplica(t *testing.T, leaseNamespace string) (*operator, <-chan struct{}) {
	t.Helper()
	lease, renew, retry := 4*time.Second, 3*time.Second, 500*time.Millisecond
	mgr, err := ctrl.NewManager(testConfig, ctrl.Options{
		Scheme: testScheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: skipNameValidation(), Cache: CacheOptions(nil),
		LeaderElection: true, LeaderElectionID: "quarks-job-test", LeaderElectionNamespace: leaseNamespace,
		LeaderElectionReleaseOnCancel: true, LeaseDuration: &lease, RenewDeadline: &renew, RetryPeriod: &retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("quarks-job"),
		ConfigChangeDebounce: testDebounce}
	if err := r.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 4}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { op.done <- mgr.Start(ctx) }()
	t.Cleanup(op.stop)
	return op, mgr.Elected()
}

// TestLeaderElection: of two replicas one leads and only it runs QuarksJobs;
// when it stops, the other takes over, and every trigger still makes exactly
// one run.
func TestLeaderElection(t *testing.T) {
	leases, ns := namespace(t), namespace(t)
	a, aElected := startReplica(t, leases)
	b, bElected := startReplica(t, leases)
	var leader *operator
	var followerElected <-chan struct{}
	select {
	case <-aElected:
		leader, followerElected = a, bElected
	case <-bElected:
		leader, followerElected = b, aElected
	case <-time.After(30 * time.Second):
		t.Fatal("no replica was elected within 30 s")
	}
	select {
	case <-followerElected:
		t.Fatal("both replicas lead")
	case <-time.After(time.Second):
	}

	if err := k8s.Create(ctx, newQJob(ns, "once", qjv1.StrategyOnce)); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, newQJob(ns, "errand", qjv1.StrategyManual)); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, ns, "once-1")
	waitStatus(t, ns, "once", lastRun(1, qjv1.RunRunning))

	stopped := time.Now()
	leader.stop()
	select {
	case <-followerElected:
		t.Logf("figure: the other replica leads %s after the leader stopped", time.Since(stopped).Round(10*time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("the other replica did not take over within 30 s")
	}
	setStrategy(t, ns, "errand", qjv1.StrategyNow)
	waitJobs(t, ns, "errand-1", "once-1")
	finishJob(t, ns, "once-1", true)
	waitStatus(t, ns, "once", lastRun(1, qjv1.RunSucceeded))
	waitJobs(t, ns, "errand-1") // a succeeded run's Job is deleted after its status is written
	keepJobs(t, ns, 2*time.Second, "errand-1")
	for name, runs := range map[string]int64{"once": 1, "errand": 1} {
		if q := getQJob(t, ns, name); q.Status.RunCount != runs {
			t.Errorf("%s: runCount %d, want %d", name, q.Status.RunCount, runs)
		}
	}
}
