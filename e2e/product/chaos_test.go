//go:build e2e && chaos

package product_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"helm.sh/helm/v3/pkg/action"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// The chaos suite (make chaos): faults injected while runs are under way on the local cluster,
// and what must hold afterwards. It prints a table of its figures and writes it to
// CHAOS_REPORT. It needs root on the machine the cluster runs on: it kills the controller's
// process with SIGKILL, and restarts the API server with CHAOS_RESTART_APISERVER.

// Bounds: generous for a loaded 2-core machine, finite so that a hang fails.
const (
	chaosRunsTimeout = 15 * time.Minute
	leaseName        = "quarks-job.quarks.cloudfoundry.org"
)

func TestChaos(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { writeChaosReport(t, time.Since(start)) })
	t.Run("crash-safety", testCrashSafety)
	t.Run("apiserver-restart", testAPIServerRestart)
	t.Run("output-under-load", testOutputUnderLoad)
	t.Run("failover", testFailover)
}

// chaosRow is a line of the report: what was measured, its goal, and whether it held.
type chaosRow struct {
	figure, goal, measured string
	pass                   bool
}

var chaosReport struct {
	sync.Mutex
	rows []chaosRow
}

func reportChaos(t *testing.T, figure, goal string, pass bool, measured string, args ...any) {
	t.Helper()
	row := chaosRow{figure: figure, goal: goal, measured: fmt.Sprintf(measured, args...), pass: pass}
	chaosReport.Lock()
	chaosReport.rows = append(chaosReport.rows, row)
	chaosReport.Unlock()
	t.Logf("figure: %s: %s (goal: %s)", figure, row.measured, goal)
	if !pass {
		t.Errorf("%s: %s; goal: %s", figure, row.measured, goal)
	}
}

func writeChaosReport(t *testing.T, took time.Duration) {
	chaosReport.Lock()
	defer chaosReport.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "| figure | goal | measured | result |\n|---|---|---|---|\n")
	for _, r := range chaosReport.rows {
		result := "pass"
		if !r.pass {
			result = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.figure, r.goal, r.measured, result)
	}
	fmt.Fprintf(&b, "\nmake chaos: %s on %d cores, %s\n", took.Round(time.Second), runtimeCPUs(), time.Now().UTC().Format("2006-01-02"))
	fmt.Print("\n" + b.String())
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		err := os.MkdirAll(filepath.Dir(path), 0o755)
		if err == nil {
			err = os.WriteFile(path, []byte(b.String()), 0o644)
		}
		if err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
}

func runtimeCPUs() int {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(raw), "\nprocessor") + 1
}

// runWatch holds what an informer saw of a namespace's QuarksJobs and Jobs, so that a hundred
// waits cost the API server one watch each, not a hundred polls.
type runWatch struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	qjobs   map[string]*qjv1.QuarksJob
	jobs    map[string]time.Time // first seen
}

func (e *tenv) watchRuns() *runWatch {
	w := &runWatch{changed: make(chan struct{}), qjobs: map[string]*qjv1.QuarksJob{}, jobs: map[string]time.Time{}}
	stop := make(chan struct{})
	e.t.Cleanup(func() { close(stop) })

	seeQJob := func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		var q qjv1.QuarksJob
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &q); err != nil {
			e.t.Errorf("quarksjob %s: %v", u.GetName(), err)
			return
		}
		w.mu.Lock()
		w.qjobs[q.Name] = &q
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
	dyn := dynamicinformer.NewFilteredDynamicSharedInformerFactory(suite.dynamic, 0, e.namespace, nil)
	_, _ = dyn.ForResource(qjobGVR).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: seeQJob, UpdateFunc: func(_, obj any) { seeQJob(obj) },
	})
	typed := informers.NewSharedInformerFactoryWithOptions(suite.kube, 0, informers.WithNamespace(e.namespace))
	_, _ = typed.Batch().V1().Jobs().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if j, ok := obj.(*batchv1.Job); ok {
				w.mu.Lock()
				if _, seen := w.jobs[j.Name]; !seen {
					w.jobs[j.Name] = time.Now()
				}
				w.mu.Unlock()
			}
		},
	})
	dyn.Start(stop)
	typed.Start(stop)
	dyn.WaitForCacheSync(stop)
	typed.WaitForCacheSync(stop)
	return w
}

// wait blocks until cond holds for the QuarksJob name, or ctx ends.
func (w *runWatch) wait(ctx context.Context, name, what string, cond func(*qjv1.QuarksJob) bool) error {
	for {
		w.mu.Lock()
		q, changed := w.qjobs[name], w.changed
		w.mu.Unlock()
		if q != nil && cond(q) {
			return nil
		}
		select {
		case <-ctx.Done():
			state := "not seen"
			if q != nil {
				state = fmt.Sprintf("runCount %d, last run %s", q.Status.RunCount, runString(q.Status.LastRun))
			}
			return fmt.Errorf("quarksjob %s: %s: %w (%s)", name, what, ctx.Err(), state)
		case <-changed:
		}
	}
}

func (w *runWatch) qjob(name string) *qjv1.QuarksJob {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.qjobs[name]
}

// jobRuns returns the run numbers of the Jobs seen for the QuarksJob (Jobs are named
// <quarksjob>-<run>), sorted, with each Job counted once by name.
func (w *runWatch) jobRuns(qjob string) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var runs []int64
	for name := range w.jobs {
		rest, ok := strings.CutPrefix(name, qjob+"-")
		if n, err := strconv.ParseInt(rest, 10, 64); ok && err == nil {
			runs = append(runs, n)
		}
	}
	slices.Sort(runs)
	return runs
}

func (w *runWatch) jobsSince(t time.Time, prefix string) (first time.Time, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, seen := range w.jobs {
		if seen.After(t) && strings.HasPrefix(name, prefix) {
			n++
			if first.IsZero() || seen.Before(first) {
				first = seen
			}
		}
	}
	return first, n
}

func (w *runWatch) jobCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.jobs)
}

func runFinished(n int64) func(*qjv1.QuarksJob) bool {
	return func(q *qjv1.QuarksJob) bool {
		r := q.Status.LastRun
		return r != nil && (r.Number > n || r.Number == n && r.Result != qjv1.RunRunning)
	}
}

func runRequested(n int64) func(*qjv1.QuarksJob) bool {
	return func(q *qjv1.QuarksJob) bool {
		req, ok, _ := qjv1.RunRequestOf(q.Annotations)
		return ok && req.Run >= n && q.Spec.Trigger.Strategy != qjv1.StrategyNow
	}
}

// chaosJob is a QuarksJob whose container writes its pod's name to the versioned Secret
// <name>-out, keeping every version, so that each can be counted. Its runs may take the
// scenario's bound to start: the single node runs at most 110 pods, and the scenarios create
// more. With a ConfigMap it reads it (and runs again when it changes, with
// updateOnConfigChange). jobSpec adds to the Job's spec (completions, parallelism).
func chaosJob(name, strategy, configMap, jobSpec string) string {
	env, update := "", ""
	if configMap != "" {
		update = "\n  updateOnConfigChange: true"
		env = fmt.Sprintf(`
            env:
            - name: VALUE
              valueFrom:
                configMapKeyRef:
                  name: %s
                  key: value`, configMap)
	}
	return fmt.Sprintf(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: %[1]s
spec:
  trigger:
    strategy: %[2]s%[3]s
  runStartTimeout: 15m
  output:
    versionsToKeep: 100
    outputMap:
      work:
        out.json:
          name: %[1]s-out
          versioned: true
  template:
    spec:
      backoffLimit: 0
%[5]s
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 2
          containers:
          - name: work
            image: busybox
            command: ["sh", "-c", "echo \"{\\\"pod\\\":\\\"$HOSTNAME\\\"}\" > /mnt/quarks/out.json"]%[4]s
`, name, strategy, update, env, jobSpec)
}

// wantRunsAndVersions checks that the QuarksJob had exactly runs runs, each a Succeeded Job of its
// own, and that its versioned Secret has one version per pod that ran (podsPerRun for each run),
// each written by a pod of one of these runs. It returns what is lost (triggers without a run,
// versions missing) and duplicated (runs or versions beyond the expected).
//
// A QuarksJob whose last run had not finished when the scenario's bound ended is unfinished: only
// what it duplicated counts then, since what is missing may still come.
func (e *tenv) wantRunsAndVersions(w *runWatch, name string, runs int64, podsPerRun int) (lost, duplicated int, unfinished bool, problems []string) {
	q := w.qjob(name)
	if q == nil {
		return int(runs), 0, false, []string{name + ": never seen"}
	}
	if !runFinished(runs)(q) {
		unfinished = true
		problems = append(problems, fmt.Sprintf("%s: unfinished: last run %s, want run %d finished", name, runString(q.Status.LastRun), runs))
	}
	if q.Status.RunCount != runs && !unfinished {
		problems = append(problems, fmt.Sprintf("%s: runCount %d, want %d", name, q.Status.RunCount, runs))
	}
	if r := q.Status.LastRun; !unfinished && (r == nil || r.Number != runs || r.Result != qjv1.RunSucceeded) {
		problems = append(problems, fmt.Sprintf("%s: last run %s, want run %d Succeeded", name, runString(r), runs))
	}
	for _, p := range q.Status.PreviousRuns {
		if p.Result != qjv1.RunSucceeded {
			problems = append(problems, fmt.Sprintf("%s: run %d %s: %s", name, p.Number, p.Result, p.Message))
		}
	}
	jobRuns := w.jobRuns(name)
	want := make([]int64, 0, runs)
	for i := int64(1); i <= runs; i++ {
		want = append(want, i)
	}
	if !slices.Equal(jobRuns, want) && (!unfinished || len(jobRuns) > int(runs)) {
		problems = append(problems, fmt.Sprintf("%s: Jobs of runs %v, want %v", name, jobRuns, want))
	}
	if !unfinished {
		lost += max(0, int(runs)-len(jobRuns))
	}
	duplicated += max(0, len(jobRuns)-int(runs))

	secrets, err := suite.kube.CoreV1().Secrets(e.namespace).List(e.ctx, metav1.ListOptions{LabelSelector: qjv1.LabelPersistentSecretContainer + "=work"})
	if err != nil {
		return lost, duplicated, unfinished, append(problems, err.Error())
	}
	wantVersions := int(runs) * podsPerRun
	pods := map[string]bool{}
	versions := 0
	for _, s := range secrets.Items {
		base, _, ok := qjv1.ParseVersionedName(s.Name)
		if !ok || base != name+"-out" {
			continue
		}
		versions++
		pod := string(s.Data["pod"])
		rest, _ := strings.CutPrefix(pod, name+"-")
		run, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.ParseInt(run, 10, 64); err != nil || n < 1 || n > runs || pods[pod] {
			problems = append(problems, fmt.Sprintf("%s: version %s written by pod %q, not one pod of its runs", name, s.Name, pod))
		}
		pods[pod] = true
	}
	if versions > wantVersions || versions < wantVersions && !unfinished {
		problems = append(problems, fmt.Sprintf("%s: %d versions of %s-out, want %d", name, versions, name, wantVersions))
	}
	if !unfinished {
		lost += max(0, wantVersions-versions)
	}
	duplicated += max(0, versions-wantVersions)
	return lost, duplicated, unfinished, problems
}

// waitOneRunEach waits until run 1 of each QuarksJob has finished, or ctx ends, and checks each
// with wantRunsAndVersions. It returns the sums: outputs or runs lost, duplicated, and the
// QuarksJobs unfinished when ctx ended.
func (e *tenv) waitOneRunEach(ctx context.Context, w *runWatch, qjobs []string, podsPerRun int) (lost, duplicated, unfinished int) {
	for _, name := range qjobs {
		if err := w.wait(ctx, name, "run 1 finished", runFinished(1)); err != nil {
			e.t.Error(err)
		}
		l, d, u, problems := e.wantRunsAndVersions(w, name, 1, podsPerRun)
		lost, duplicated = lost+l, duplicated+d
		if u {
			unfinished++
		}
		for _, p := range problems {
			e.t.Error(p)
		}
	}
	return lost, duplicated, unfinished
}

// leader returns the controller that holds the leader election Lease: its identity, which
// names one process (<pod>_<uuid>, as controller-runtime makes it), and its pod; both "" when
// none holds it. A controller killed without its pod restarts in the same pod, as a new process
// with a new identity.
func leader(ctx context.Context) (identity, pod string, err error) {
	lease, err := suite.kube.CoordinationV1().Leases(releaseNS).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	if lease.Spec.HolderIdentity == nil {
		return "", "", nil
	}
	// A pod's hostname is its name.
	pod, _, _ = strings.Cut(*lease.Spec.HolderIdentity, "_")
	return *lease.Spec.HolderIdentity, pod, nil
}

// waitNewLeader waits until a controller other than the one with the identity old holds the
// Lease and returns its identity and pod.
func waitNewLeader(ctx context.Context, old string) (identity, pod string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err = poll(ctx, 200*time.Millisecond, func() (bool, string) {
		var err error
		identity, pod, err = leader(ctx)
		if err != nil {
			return false, err.Error()
		}
		return identity != "" && identity != old, "the Lease is held by " + identity
	})
	return identity, pod, err
}

// crashController kills every process of the controller container of pod with SIGKILL: the
// controller gets no chance to release its Lease, finish a write or answer an upload. With
// replace, the pod is then deleted so that its Deployment starts a new one at once (the kubelet
// would restart the container in place only after a back-off that grows with each crash).
func crashController(ctx context.Context, podName string, replace bool) error {
	pod, err := suite.kube.CoreV1().Pods(releaseNS).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var id string
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == "quarks-job" {
			_, id, _ = strings.Cut(s.ContainerID, "://")
		}
	}
	if id == "" {
		return fmt.Errorf("pod %s has no running controller container", podName)
	}
	pids := processesOfContainer(id)
	if len(pids) == 0 {
		return fmt.Errorf("no process of container %s (pod %s) on this machine: make chaos runs on the local cluster, as root", id, podName)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill %d (pod %s): %w", pid, podName, err)
		}
	}
	if !replace {
		return nil
	}
	zero := int64(0)
	return suite.kube.CoreV1().Pods(releaseNS).Delete(ctx, podName, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

// processesOfContainer returns the pids whose cgroup names the container.
func processesOfContainer(id string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		cgroup, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cgroup"))
		if err == nil && strings.Contains(string(cgroup), id) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// crashLoop kills the leading controller at random moments until done is closed and at least
// min kills happened (at most max). Each kill waits first for a new leader: every kill hits a
// controller that was acting. It returns the kills and the longest time a new leader took.
func crashLoop(ctx context.Context, t *testing.T, done <-chan struct{}, minKills, maxKills int, replace bool) (kills int, longest time.Duration) {
	previous := ""
	for kills < maxKills {
		select {
		case <-done:
			if kills >= minKills {
				return kills, longest
			}
		default:
		}
		killedAt := time.Now()
		identity, pod, err := waitNewLeader(ctx, previous)
		if err != nil {
			t.Errorf("after kill %d: no new leader: %v", kills, err)
			return kills, longest
		}
		if previous != "" {
			longest = max(longest, time.Since(killedAt))
		}
		// A random moment in the leader's work: between 2 and 15 s after it took over (each
		// kill costs the Lease's 15 s before a new leader acts).
		select {
		case <-ctx.Done():
			return kills, longest
		case <-time.After(2*time.Second + rand.N(13*time.Second)): //nolint:gosec // G404: a random moment, not a secret
		}
		if err := crashController(ctx, pod, replace); err != nil {
			t.Errorf("kill %d: %v", kills+1, err)
			return kills, longest
		}
		kills++
		previous = identity
		t.Logf("kill %d: controller pod %s (SIGKILL)", kills, pod)
	}
	return kills, longest
}

// testCrashSafety: 100 QuarksJobs, 301 triggers (errands "now" 4 times each, one-offs, config
// changes) while the controller is killed with SIGKILL at random moments, at least 10 times.
// Afterwards: exactly one run per trigger, each with its Job and its output version.
func testCrashSafety(t *testing.T) {
	const errands, configs, onceOnly, triggersEach = 34, 33, 33, 4
	e := newEnv(t, "crash", nil)
	w := e.watchRuns()
	ctx, cancel := context.WithTimeout(e.ctx, chaosRunsTimeout)
	defer cancel()

	type qj struct {
		name string
		runs int64
	}
	var all []qj
	var wg sync.WaitGroup
	errs := make(chan error, errands+configs+onceOnly)
	drive := func(name string, runs int64, f func() error) {
		all = append(all, qj{name, runs})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}
	start := time.Now()
	done := make(chan struct{})
	var kills int
	var longest time.Duration
	var killer sync.WaitGroup
	killer.Add(1)
	go func() {
		defer killer.Done()
		kills, longest = crashLoop(ctx, t, done, 10, 10, true)
	}()

	for i := range errands {
		name := fmt.Sprintf("errand-%d", i)
		e.apply(name, []byte(chaosJob(name, "manual", "", "")))
		drive(name, triggersEach, func() error {
			for k := int64(1); k <= triggersEach; k++ {
				if err := w.wait(ctx, name, "seen", func(*qjv1.QuarksJob) bool { return true }); err != nil {
					return err
				}
				if err := patchStrategyNow(ctx, e.namespace, name); err != nil {
					return err
				}
				if err := w.wait(ctx, name, fmt.Sprintf("trigger %d accepted", k), runRequested(k)); err != nil {
					return err
				}
				if err := w.wait(ctx, name, fmt.Sprintf("run %d finished", k), runFinished(k)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range configs {
		name := fmt.Sprintf("config-%d", i)
		e.apply(name+" configmap", fmt.Appendf(nil, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  value: \"1\"\n", name))
		e.apply(name, []byte(chaosJob(name, "once", name, "")))
		drive(name, triggersEach, func() error {
			for k := int64(2); k <= triggersEach; k++ {
				if err := w.wait(ctx, name, fmt.Sprintf("run %d finished", k-1), runFinished(k-1)); err != nil {
					return err
				}
				patch := fmt.Sprintf(`{"data":{"value":"%d"}}`, k)
				if _, err := suite.kube.CoreV1().ConfigMaps(e.namespace).Patch(ctx, name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
					return err
				}
			}
			return w.wait(ctx, name, fmt.Sprintf("run %d finished", triggersEach), runFinished(triggersEach))
		})
	}
	for i := range onceOnly {
		name := fmt.Sprintf("once-%d", i)
		e.apply(name, []byte(chaosJob(name, "once", "", "")))
		drive(name, 1, func() error { return w.wait(ctx, name, "run 1 finished", runFinished(1)) })
	}
	wg.Wait()
	close(done)
	killer.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(start)

	var triggers, runs, lost, duplicated, unfinished int64
	for _, q := range all {
		triggers += q.runs
		l, d, u, problems := e.wantRunsAndVersions(w, q.name, q.runs, 1)
		lost, duplicated = lost+int64(l), duplicated+int64(d)
		if u {
			unfinished++
		}
		for _, p := range problems {
			t.Error(p)
		}
		if got := w.qjob(q.name); got != nil {
			runs += got.Status.RunCount
		}
	}
	reportChaos(t, "crash safety: 100 QuarksJobs, triggers under SIGKILL", "≥300 triggers, ≥10 kills; 0 runs lost or duplicated; every output version present",
		triggers >= 300 && kills >= 10 && lost == 0 && duplicated == 0 && !t.Failed(),
		"%d triggers → %d runs, %d Jobs; %d lost, %d duplicated, %d QuarksJobs unfinished at the bound; %d kills; new leader ≤ %s; %s",
		triggers, runs, w.jobCount(), lost, duplicated, unfinished, kills, longest.Round(100*time.Millisecond), took.Round(time.Second))
}

func patchStrategyNow(ctx context.Context, namespace, name string) error {
	_, err := suite.dynamic.Resource(qjobGVR).Namespace(namespace).Patch(ctx, name, "application/merge-patch+json",
		[]byte(`{"spec":{"trigger":{"strategy":"now"}}}`), metav1.PatchOptions{})
	return err
}

// testAPIServerRestart: the API server is killed with SIGKILL while runs are active and
// uploading, and stays down for 15 s. Every run finishes, with its output.
func testAPIServerRestart(t *testing.T) {
	const qjobs = 30
	restart := strings.Fields(os.Getenv("CHAOS_RESTART_APISERVER"))
	if len(restart) == 0 {
		t.Fatal("CHAOS_RESTART_APISERVER is not set: make chaos sets it to the local cluster's restart command")
	}
	e := newEnv(t, "apiserver", nil)
	w := e.watchRuns()
	ctx, cancel := context.WithTimeout(e.ctx, chaosRunsTimeout)
	defer cancel()
	for i := range qjobs {
		name := fmt.Sprintf("slow-%d", i)
		// Staggered: some runs upload before the restart, some during, some after.
		job := strings.Replace(chaosJob(name, "once", "", ""), `"sh", "-c", "`, fmt.Sprintf(`"sh", "-c", "sleep %d; `, 2+i%12), 1)
		e.apply(name, []byte(job))
	}
	// The restart begins once the first output is written: uploads are under way.
	if err := poll(ctx, 200*time.Millisecond, func() (bool, string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.secrets) > 0, "no output Secret yet"
	}); err != nil {
		t.Fatal(err)
	}
	active := 0
	for i := range qjobs {
		if q := w.qjob(fmt.Sprintf("slow-%d", i)); q != nil && q.Status.LastRun != nil && q.Status.LastRun.Result == qjv1.RunRunning {
			active++
		}
	}
	killed := time.Now()
	cmd := exec.CommandContext(ctx, restart[0], restart[1:]...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", strings.Join(restart, " "), out)
	if err != nil {
		t.Fatalf("restarting the API server: %v", err)
	}
	back := time.Now()
	lost, duplicated, unfinished := e.waitOneRunEach(ctx, w, names("slow-%d", qjobs), 1)
	reportChaos(t, "API server killed for 15 s during runs and uploads", "every run Succeeded with its output; none lost or repeated",
		lost == 0 && duplicated == 0 && !t.Failed(),
		"%d runs (%d active at the kill): %d outputs lost, %d repeated, %d unfinished; API server back after %s; all finished %s later",
		qjobs, active, lost, duplicated, unfinished, back.Sub(killed).Round(100*time.Millisecond), time.Since(back).Round(100*time.Millisecond))
}

// testOutputUnderLoad: job pods write output (CHAOS_PODS in all, 1,000 by default: runs of 10
// pods each), and the controller is killed in the middle. Every output version exists
// afterwards, each run Succeeded, or the run names what is missing.
func testOutputUnderLoad(t *testing.T) {
	const podsPerRun = 10
	total := 1000
	if v, err := strconv.Atoi(os.Getenv("CHAOS_PODS")); err == nil && v > 0 {
		total = v
	}
	qjobs := max(1, total/podsPerRun)
	e := newEnv(t, "load", nil)
	w := e.watchRuns()
	ctx, cancel := context.WithTimeout(e.ctx, chaosRunsTimeout)
	defer cancel()
	start := time.Now()
	// Two pods of a run at a time: 200 pods at once, of which the node runs 110.
	spec := fmt.Sprintf("      completions: %d\n      parallelism: 2", podsPerRun)
	for i := range qjobs {
		name := fmt.Sprintf("load-%d", i)
		e.apply(name, []byte(chaosJob(name, "once", "", spec)))
	}
	outputs := qjobs * podsPerRun
	if err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.secrets) >= outputs/2, fmt.Sprintf("%d of %d outputs", len(e.secrets), outputs)
	}); err != nil {
		t.Fatal(err)
	}
	_, pod, err := leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashController(ctx, pod, true); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	atKill := len(e.secrets)
	e.mu.Unlock()
	t.Logf("controller pod %s killed with %d of %d outputs written", pod, atKill, outputs)

	lost, duplicated, unfinished := e.waitOneRunEach(ctx, w, names("load-%d", qjobs), podsPerRun)
	reportChaos(t, fmt.Sprintf("output of %d job pods, controller killed at half", outputs), "every output Secret written, or the run names what is missing",
		lost == 0 && duplicated == 0 && !t.Failed(),
		"%d runs of %d pods: %d outputs lost, %d duplicated, %d runs unfinished; killed at %d written; %s",
		qjobs, podsPerRun, lost, duplicated, unfinished, atKill, time.Since(start).Round(time.Second))
}

// testFailover: two controller replicas; the leader is killed with SIGKILL during a burst of
// triggers. No run is duplicated, and the new leader acts within 20 s (the Lease's 15 s and its
// retry period).
func testFailover(t *testing.T) {
	const errands, afterKill = 30, 20
	setReplicas(t, 2)
	e := newEnv(t, "failover", nil)
	w := e.watchRuns()
	ctx, cancel := context.WithTimeout(e.ctx, chaosRunsTimeout)
	defer cancel()
	for i := range errands {
		name := fmt.Sprintf("errand-%d", i)
		e.apply(name, []byte(chaosJob(name, "manual", "", "")))
	}
	for i := range errands {
		if err := w.wait(ctx, fmt.Sprintf("errand-%d", i), "seen", func(*qjv1.QuarksJob) bool { return true }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range errands {
		if err := patchStrategyNow(ctx, e.namespace, fmt.Sprintf("errand-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := poll(ctx, 50*time.Millisecond, func() (bool, string) {
		return w.jobCount() >= errands/3, fmt.Sprintf("%d Jobs", w.jobCount())
	}); err != nil {
		t.Fatal(err)
	}
	identity, pod, err := leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashController(ctx, pod, false); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for i := range afterKill {
		name := fmt.Sprintf("once-%d", i)
		e.apply(name, []byte(chaosJob(name, "once", "", "")))
	}
	newLeader, _, err := waitNewLeader(ctx, identity)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Since(killed)
	lost, duplicated, unfinished := e.waitOneRunEach(ctx, w, append(names("errand-%d", errands), names("once-%d", afterKill)...), 1)
	// The one-offs were created after the kill: only the new leader can have made their Jobs.
	first, _ := w.jobsSince(killed, "once-")
	acted := first.Sub(killed)
	reportChaos(t, "failover: leader killed during a burst of triggers", "new leader acts < 20 s; no run duplicated or lost",
		acted > 0 && acted < 20*time.Second && lost == 0 && duplicated == 0 && !t.Failed(),
		"%s → %s: elected after %s, first Job %s after the kill; %d runs: %d lost, %d duplicated, %d unfinished",
		pod, newLeader, elected.Round(100*time.Millisecond), acted.Round(100*time.Millisecond), errands+afterKill, lost, duplicated, unfinished)
}

func names(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

// setReplicas upgrades the release to n controller replicas and waits until they are rolled out.
func setReplicas(t *testing.T, n int) {
	cfg, err := helmConfig()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := parseSets(append(slices.Clone(suite.sets), fmt.Sprintf("controller.replicas=%d", n)))
	if err != nil {
		t.Fatal(err)
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = releaseNS
	up.Timeout = installTimeout
	if _, err := up.RunWithContext(t.Context(), releaseName, suite.chart, vals); err != nil {
		t.Fatalf("helm upgrade to %d controller replicas: %v", n, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), installTimeout)
	defer cancel()
	if err := waitRolledOut(ctx, controllerDeployment); err != nil {
		t.Fatal(err)
	}
	if err := waitOnlyCurrentPods(ctx, controllerDeployment); err != nil {
		t.Fatal(err)
	}
}
