//go:build e2e

package product_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// Bounds of the waits: generous for a loaded 2-core machine, short enough that a hang fails fast.
const (
	runTimeout = 2 * time.Minute
	// quiet is how long a test watches that nothing happens (no run, no second run).
	quiet = 5 * time.Second
)

var qjobGVR = schema.GroupVersionResource{Group: qjv1.GroupName, Version: "v1alpha1", Resource: "quarksjobs"}

// tenv is one test's namespace with recorders of its pods and Secrets.
type tenv struct {
	t         testing.TB
	ctx       context.Context
	namespace string

	mu      sync.Mutex
	pods    map[string]*podRecord
	secrets map[string]time.Time // first seen
}

// podRecord is what the test saw of a pod: its newest version, and when it saw each container
// terminated and the pod finished.
type podRecord struct {
	pod       *corev1.Pod
	created   time.Time
	exited    map[string]time.Time
	finished  time.Time
	deletedAt time.Time
}

// newEnv creates a namespace (with labels) for one test, watches its pods and Secrets, and deletes
// it after the test, logging its pods and events when the test failed.
func newEnv(t testing.TB, prefix string, labels map[string]string) *tenv {
	t.Helper()
	ctx := t.Context()
	ns, err := suite.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "e2e-product-" + prefix + "-", Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	e := &tenv{t: t, ctx: ctx, namespace: ns.Name, pods: map[string]*podRecord{}, secrets: map[string]time.Time{}}
	t.Logf("namespace %s", ns.Name)

	factory := informers.NewSharedInformerFactoryWithOptions(suite.kube, 0, informers.WithNamespace(ns.Name))
	podInformer := factory.Core().V1().Pods().Informer()
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.seePod(obj, false) },
		UpdateFunc: func(_, obj any) { e.seePod(obj, false) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			e.seePod(obj, true)
		},
	})
	secretInformer := factory.Core().V1().Secrets().Informer()
	_, _ = secretInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if s, ok := obj.(*corev1.Secret); ok {
				e.mu.Lock()
				if _, seen := e.secrets[s.Name]; !seen {
					e.secrets[s.Name] = time.Now()
				}
				e.mu.Unlock()
			}
		},
	})
	stop := make(chan struct{})
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	t.Cleanup(func() {
		close(stop)
		factory.Shutdown()
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			for _, line := range describeNamespace(ctx, ns.Name) {
				t.Log(line)
			}
			e.logQJobs(ctx)
		}
		deleteNamespace(ns.Name)
	})
	return e
}

func (e *tenv) seePod(obj any, deleted bool) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.pods[pod.Name]
	if r == nil {
		r = &podRecord{created: now, exited: map[string]time.Time{}}
		e.pods[pod.Name] = r
	}
	r.pod = pod.DeepCopy()
	for _, s := range pod.Status.ContainerStatuses {
		if _, seen := r.exited[s.Name]; !seen && s.State.Terminated != nil {
			r.exited[s.Name] = now
		}
	}
	if r.finished.IsZero() && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed) {
		r.finished = now
	}
	if deleted && r.deletedAt.IsZero() {
		r.deletedAt = now
	}
}

// runPods returns what the test saw of the pods of the QuarksJob's run number.
func (e *tenv) runPods(qjob string, run int64) []podRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []podRecord
	for _, r := range e.pods {
		if r.pod.Labels[qjv1.LabelQJobName] == qjob && r.pod.Labels[qjv1.LabelRun] == fmt.Sprint(run) {
			c := *r
			c.exited = map[string]time.Time{}
			for k, v := range r.exited {
				c.exited[k] = v
			}
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b podRecord) int { return a.created.Compare(b.created) })
	return out
}

// onlyRunPod fails unless the run had exactly one pod, and returns it.
func (e *tenv) onlyRunPod(qjob string, run int64) podRecord {
	e.t.Helper()
	pods := e.runPods(qjob, run)
	if len(pods) != 1 {
		e.t.Fatalf("run %d of %s had %d pods, want 1", run, qjob, len(pods))
	}
	return pods[0]
}

func (e *tenv) secretSeen(name string) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	at, ok := e.secrets[name]
	return at, ok
}

// applyFile creates every object of a multi-document YAML file in the test's namespace.
func (e *tenv) applyFile(path string) []*unstructured.Unstructured {
	e.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.apply(filepath.Base(path), data)
}

// apply creates every object of multi-document YAML in the test's namespace.
func (e *tenv) apply(what string, data []byte) []*unstructured.Unstructured {
	e.t.Helper()
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var created []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			e.t.Fatalf("%s: %v", what, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		mapping, err := suite.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			e.t.Fatalf("%s: %s: %v", what, gvk, err)
		}
		obj.SetNamespace(e.namespace)
		out, err := suite.dynamic.Resource(mapping.Resource).Namespace(e.namespace).Create(e.ctx, obj, metav1.CreateOptions{})
		if err != nil {
			e.t.Fatalf("%s: create %s %s: %v", what, gvk.Kind, obj.GetName(), err)
		}
		created = append(created, out)
	}
	if len(created) == 0 {
		e.t.Fatalf("%s: no objects", what)
	}
	return created
}

func (e *tenv) qjob(name string) (*qjv1.QuarksJob, error) {
	u, err := suite.dynamic.Resource(qjobGVR).Namespace(e.namespace).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	q := &qjv1.QuarksJob{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, q); err != nil {
		return nil, err
	}
	return q, nil
}

// patchQJob merge-patches a QuarksJob, as kubectl patch --type merge does.
func (e *tenv) patchQJob(name, patch string) {
	e.t.Helper()
	_, err := suite.dynamic.Resource(qjobGVR).Namespace(e.namespace).Patch(e.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		e.t.Fatalf("patch qjob %s with %s: %v", name, patch, err)
	}
}

// waitQJob waits up to runTimeout until cond holds for the QuarksJob; the failure message says
// what was awaited and cond's last explanation.
func (e *tenv) waitQJob(name, what string, cond func(*qjv1.QuarksJob) (bool, string)) *qjv1.QuarksJob {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, runTimeout)
	defer cancel()
	var q *qjv1.QuarksJob
	err := poll(ctx, 250*time.Millisecond, func() (bool, string) {
		var err error
		q, err = e.qjob(name)
		if err != nil {
			return false, err.Error()
		}
		return cond(q)
	})
	if err != nil {
		e.t.Fatalf("qjob %s/%s: waited %s for %s: %v", e.namespace, name, runTimeout, what, err)
	}
	return q
}

// waitRunFinished waits until run number n of the QuarksJob has finished (Succeeded or Failed).
func (e *tenv) waitRunFinished(name string, n int64) *qjv1.QuarksJob {
	e.t.Helper()
	return e.waitQJob(name, fmt.Sprintf("run %d to finish", n), func(q *qjv1.QuarksJob) (bool, string) {
		r := q.Status.LastRun
		switch {
		case r == nil:
			return false, fmt.Sprintf("no run yet (runCount %d)", q.Status.RunCount)
		case r.Number < n:
			return false, fmt.Sprintf("last run is %d (%s)", r.Number, r.Result)
		case r.Number > n:
			return true, ""
		case r.Result == qjv1.RunRunning:
			return false, fmt.Sprintf("run %d is Running", n)
		}
		return true, ""
	})
}

// wantRun fails unless the QuarksJob's last run is number n with the result.
func (e *tenv) wantRun(q *qjv1.QuarksJob, n int64, result qjv1.RunResult) {
	e.t.Helper()
	r := q.Status.LastRun
	if r == nil || r.Number != n || r.Result != result {
		e.t.Fatalf("qjob %s: last run %s, want run %d %s", q.Name, runString(r), n, result)
	}
}

func runString(r *qjv1.Run) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("%d (job %s, trigger %s) %s: %q", r.Number, r.JobName, r.Trigger, r.Result, r.Message)
}

// stays checks for the quiet period that the QuarksJob's runCount stays n.
func (e *tenv) staysAtRunCount(name string, n int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, quiet)
	defer cancel()
	// Never done: checked until the quiet period ends, or fails at once.
	_ = poll(ctx, 500*time.Millisecond, func() (bool, string) {
		q, err := e.qjob(name)
		if err != nil {
			e.t.Fatal(err)
		}
		if q.Status.RunCount != n {
			e.t.Fatalf("qjob %s: runCount %d, want it to stay %d (last run %s)", name, q.Status.RunCount, n, runString(q.Status.LastRun))
		}
		return false, ""
	})
}

// waitSecret waits until the Secret exists.
func (e *tenv) waitSecret(name string) *corev1.Secret {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, runTimeout)
	defer cancel()
	var s *corev1.Secret
	err := poll(ctx, 250*time.Millisecond, func() (bool, string) {
		var err error
		s, err = suite.kube.CoreV1().Secrets(e.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if err != nil {
		e.t.Fatalf("secret %s/%s: %v", e.namespace, name, err)
	}
	return s
}

// secret returns the Secret, failing when it does not exist.
func (e *tenv) secret(name string) *corev1.Secret {
	e.t.Helper()
	s, err := suite.kube.CoreV1().Secrets(e.namespace).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("secret %s/%s: %v", e.namespace, name, err)
	}
	return s
}

func (e *tenv) noSecret(name string) {
	e.t.Helper()
	_, err := suite.kube.CoreV1().Secrets(e.namespace).Get(e.ctx, name, metav1.GetOptions{})
	if err == nil {
		e.t.Errorf("secret %s/%s exists, want none", e.namespace, name)
	} else if !apierrors.IsNotFound(err) {
		e.t.Error(err)
	}
}

// wantData fails unless the Secret holds exactly the data.
func wantData(t testing.TB, s *corev1.Secret, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for k, v := range s.Data {
		got[k] = string(v)
	}
	if len(got) != len(want) {
		t.Errorf("secret %s data %v, want %v", s.Name, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("secret %s data %v, want %v", s.Name, got, want)
			return
		}
	}
}

// wantLabels fails unless the object carries each label.
func wantLabels(t testing.TB, what string, labels map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			t.Errorf("%s: label %s=%q, want %q (labels %v)", what, k, got, v, labels)
		}
	}
}

// persister returns the injected persister of a pod, or nil.
func persister(pod *corev1.Pod) *corev1.Container {
	for i, c := range pod.Spec.InitContainers {
		if c.Name == upload.PersisterContainerName {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// wantPersister fails unless the pod had the persister injected as a native sidecar.
func wantPersister(t testing.TB, pod *corev1.Pod) *corev1.Container {
	t.Helper()
	c := persister(pod)
	if c == nil {
		t.Fatalf("pod %s has no injected %s container: init containers %v", pod.Name, upload.PersisterContainerName, containerNames(pod.Spec.InitContainers))
	}
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("pod %s: %s is not a native sidecar (restartPolicy %v)", pod.Name, c.Name, c.RestartPolicy)
	}
	return c
}

func containerNames(cs []corev1.Container) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

// events returns the messages of the events about an object, as "Reason: message".
func (e *tenv) events(kind, name string) []string {
	e.t.Helper()
	list, err := suite.kube.CoreV1().Events(e.namespace).List(e.ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range list.Items {
		out = append(out, ev.Reason+": "+ev.Message)
	}
	return out
}

func (e *tenv) logQJobs(ctx context.Context) {
	list, err := suite.dynamic.Resource(qjobGVR).Namespace(e.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, u := range list.Items {
		q := &qjv1.QuarksJob{}
		if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, q) != nil {
			continue
		}
		var conds []string
		for _, c := range q.Status.Conditions {
			conds = append(conds, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
		}
		e.t.Logf("qjob %s: strategy %s, runCount %d, last run %s, conditions %s", q.Name, q.Spec.Trigger.Strategy,
			q.Status.RunCount, runString(q.Status.LastRun), strings.Join(conds, "; "))
	}
}

// ms formats a duration in milliseconds for the figures.
func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Milliseconds())
}
