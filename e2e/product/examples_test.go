//go:build e2e

package product_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// exampleChecks has one check per file of docs/examples; a new example without a check fails
// testExamples.
var exampleChecks = map[string]func(*testing.T, *tenv){
	"errand.yaml":               checkErrand,
	"auto-errand.yaml":          checkAutoErrand,
	"auto-errand-updating.yaml": checkAutoErrandUpdating,
	"output.yaml":               checkOutput,
	"versioned-output.yaml":     checkVersionedOutput,
	"fan-out.yaml":              checkFanOut,
}

// testExamples applies every docs/examples/*.yaml, as a user following the guide would, each in
// its own namespace, and checks what the guide promises.
func testExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", examplesDir, err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		check, ok := exampleChecks[name]
		if !ok {
			t.Errorf("docs/examples/%s has no check in e2e/product: add one to exampleChecks", name)
			continue
		}
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "ex", nil)
			e.applyFile(file)
			check(t, e)
		})
	}
}

// checkErrand: manual runs nothing; "now" runs exactly once and the strategy returns to manual.
func checkErrand(t *testing.T, e *tenv) {
	const name = "errand"
	e.staysAtRunCount(name, 0)
	if jobs := e.jobsOf(name); len(jobs) != 0 {
		t.Fatalf("an errand at rest (manual) has Jobs %v", jobs)
	}

	patched := time.Now()
	e.patchQJob(name, `{"spec":{"trigger":{"strategy":"now"}}}`)
	q := e.waitRunFinished(name, 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	t.Logf("figure: errand now → run succeeded in %s", ms(time.Since(patched)))
	if q.Status.LastRun.Trigger != qjv1.RunTriggerNow || q.Status.LastRun.JobName != "errand-1" {
		t.Errorf("last run %s, want trigger Now and Job errand-1", runString(q.Status.LastRun))
	}
	if q.Spec.Trigger.Strategy != qjv1.StrategyManual {
		t.Errorf("strategy %q after the run, want manual", q.Spec.Trigger.Strategy)
	}
	e.staysAtRunCount(name, 1)
	if pods := e.runPods(name, 1); len(pods) != 1 {
		t.Errorf("run 1 had %d pods, want 1", len(pods))
	} else if p := persister(pods[0].pod); p != nil {
		t.Errorf("pod %s of a job without output got the persister", pods[0].pod.Name)
	}
}

// checkAutoErrand: once → done, the run succeeds, its Job and pods are deleted, the status keeps
// the run.
func checkAutoErrand(t *testing.T, e *tenv) {
	const name = "auto-errand"
	q := e.waitRunFinished(name, 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	r := q.Status.LastRun
	if r.Trigger != qjv1.RunTriggerOnce || r.JobName != "auto-errand-1" || r.StartTime == nil || r.CompletionTime == nil {
		t.Errorf("last run %s, start %v, completion %v: want trigger Once, Job auto-errand-1, both times", runString(r), r.StartTime, r.CompletionTime)
	}
	if q.Spec.Trigger.Strategy != qjv1.StrategyDone {
		t.Errorf("strategy %q after the run, want done", q.Spec.Trigger.Strategy)
	}
	if !q.Status.Completed || q.Status.RunCount != 1 {
		t.Errorf("status completed %v, runCount %d: want true, 1", q.Status.Completed, q.Status.RunCount)
	}
	e.waitRunCleanedUp(name)
	e.staysAtRunCount(name, 1)
}

// checkAutoErrandUpdating: a metadata change runs nothing; a data change of the ConfigMap runs
// the job once more (runCount 2).
func checkAutoErrandUpdating(t *testing.T, e *tenv) {
	const name, configMap = "auto-errand-updating", "auto-errand-updating-config"
	q := e.waitRunFinished(name, 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)

	e.patchConfigMap(configMap, `{"metadata":{"labels":{"touched":"yes"}}}`)
	e.staysAtRunCount(name, 1)

	changed := time.Now()
	e.patchConfigMap(configMap, `{"data":{"greeting":"hello again"}}`)
	q = e.waitRunFinished(name, 2)
	e.wantRun(q, 2, qjv1.RunSucceeded)
	t.Logf("figure: ConfigMap data change → run 2 succeeded in %s", ms(time.Since(changed)))
	if q.Status.LastRun.Trigger != qjv1.RunTriggerConfigChange {
		t.Errorf("run 2 trigger %s, want ConfigChange", q.Status.LastRun.Trigger)
	}
	e.staysAtRunCount(name, 2)
}

// checkOutput: the Secret holds the file's data with the output's labels; the pod had the
// persister. Figure: container exit → Secret written.
func checkOutput(t *testing.T, e *tenv) {
	const name = "output"
	q := e.waitRunFinished(name, 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	s := e.secret("output-credentials")
	wantData(t, s, map[string]string{"password": "s3cret"})
	wantLabels(t, "secret output-credentials", s.Labels, map[string]string{
		"example": "output", qjv1.LabelPersistentSecretContainer: "generate"})
	wantStatusSecret(t, q, "output-credentials", "generate", "output.json")

	pod := e.onlyRunPod(name, 1)
	wantPersister(t, pod.pod)
	if exited, ok := pod.exited["generate"]; ok {
		if written, ok := e.secretSeen("output-credentials"); ok {
			t.Logf("figure: container exit → output Secret written: %s (as seen by watches)", ms(written.Sub(exited)))
		}
		if !pod.finished.IsZero() {
			t.Logf("figure: container exit → pod finished: %s", ms(pod.finished.Sub(exited)))
		}
	}
	e.waitRunCleanedUp(name)
}

// checkVersionedOutput: run 1 writes an immutable <name>-v1 with the versioned labels; running
// again writes -v2 and keeps -v1.
func checkVersionedOutput(t *testing.T, e *tenv) {
	const name = "versioned-output"
	q := e.waitRunFinished(name, 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	v1 := e.secret("versioned-output-credentials-v1")
	wantVersioned(t, v1, "1")
	wantStatusSecret(t, q, "versioned-output-credentials-v1", "generate", "output.json")
	wantPersister(t, e.onlyRunPod(name, 1).pod)

	e.patchQJob(name, `{"spec":{"trigger":{"strategy":"once"}}}`)
	q = e.waitRunFinished(name, 2)
	e.wantRun(q, 2, qjv1.RunSucceeded)
	v2 := e.secret("versioned-output-credentials-v2")
	wantVersioned(t, v2, "2")
	if string(v1.Data["password"]) == string(v2.Data["password"]) {
		t.Errorf("v1 and v2 hold the same password %q", v1.Data["password"])
	}
	e.secret("versioned-output-credentials-v1")
}

func wantVersioned(t *testing.T, s *corev1.Secret, version string) {
	t.Helper()
	wantLabels(t, "secret "+s.Name, s.Labels, map[string]string{
		qjv1.LabelSecretKind:                qjv1.SecretKindVersioned,
		qjv1.LabelSecretVersion:             version,
		qjv1.LabelPersistentSecretContainer: "generate",
	})
	if s.Immutable == nil || !*s.Immutable {
		t.Errorf("secret %s is not immutable", s.Name)
	}
	if s.Annotations[qjv1.AnnotationSourceDescription] == "" {
		t.Errorf("secret %s has no %s annotation", s.Name, qjv1.AnnotationSourceDescription)
	}
	if len(s.Data["password"]) == 0 || len(s.Data) != 1 {
		t.Errorf("secret %s data keys %v, want only a non-empty password", s.Name, keys(s.Data))
	}
}

// checkFanOut: each top-level key becomes <name>-<key> holding the value under "value", with
// the example's labels and annotations.
func checkFanOut(t *testing.T, e *tenv) {
	const name = "fan-out"
	q := e.waitRunFinished(name, 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	for key, value := range map[string]string{"username": "admin", "password": "s3cret"} {
		s := e.secret("fan-out-login-" + key)
		wantData(t, s, map[string]string{"value": value})
		wantLabels(t, "secret "+s.Name, s.Labels, map[string]string{"example": "fan-out", qjv1.LabelPersistentSecretContainer: "generate"})
		if s.Annotations["example.com/owner"] != "docs" {
			t.Errorf("secret %s annotations %v, want example.com/owner=docs", s.Name, s.Annotations)
		}
	}
	wantPersister(t, e.onlyRunPod(name, 1).pod)
}

func wantStatusSecret(t *testing.T, q *qjv1.QuarksJob, name, container, file string) {
	t.Helper()
	if !slices.ContainsFunc(q.Status.Secrets, func(s qjv1.OutputSecret) bool {
		return s.Name == name && s.Container == container && s.File == file
	}) {
		t.Errorf("qjob %s status.secrets %+v, want %s (container %s, file %s)", q.Name, q.Status.Secrets, name, container, file)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// jobsOf lists the names of the QuarksJob's Jobs.
func (e *tenv) jobsOf(qjob string) []string {
	e.t.Helper()
	list, err := suite.kube.BatchV1().Jobs(e.namespace).List(e.ctx, metav1.ListOptions{LabelSelector: qjv1.LabelQJobName + "=" + qjob})
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, j := range list.Items {
		names = append(names, j.Name)
	}
	return names
}

// waitRunCleanedUp waits until the QuarksJob has no Job and no pod left (a succeeded run's are
// deleted).
func (e *tenv) waitRunCleanedUp(qjob string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	selector := metav1.ListOptions{LabelSelector: qjv1.LabelQJobName + "=" + qjob}
	err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		jobs, err := suite.kube.BatchV1().Jobs(e.namespace).List(ctx, selector)
		if err != nil {
			return false, err.Error()
		}
		pods, err := suite.kube.CoreV1().Pods(e.namespace).List(ctx, selector)
		if err != nil {
			return false, err.Error()
		}
		if n, m := len(jobs.Items), len(pods.Items); n+m > 0 {
			return false, "Jobs and pods left: " + strings.Join(append(e.jobsOf(qjob), podNames(pods.Items)...), ", ")
		}
		return true, ""
	})
	if err != nil {
		e.t.Fatalf("the succeeded run of %s was not cleaned up: %v", qjob, err)
	}
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, "pod/"+p.Name)
	}
	return out
}

func (e *tenv) patchConfigMap(name, patch string) {
	e.t.Helper()
	if _, err := suite.kube.CoreV1().ConfigMaps(e.namespace).Patch(e.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatalf("patch configmap %s with %s: %v", name, patch, err)
	}
}
