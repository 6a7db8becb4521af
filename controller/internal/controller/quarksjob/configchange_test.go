package quarksjob

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/references"
)

// configJob is a one-off that runs again on configuration changes, with its
// pod spec shaped by podSpec.
func configJob(ns, name string, podSpec func(*corev1.PodSpec)) *qjv1.QuarksJob {
	qjob := newQJob(ns, name, qjv1.StrategyOnce)
	qjob.Spec.UpdateOnConfigChange = true
	podSpec(&qjob.Spec.Template.Spec.Template.Spec)
	return qjob
}

func createConfigMap(t testing.TB, ns, name string, data map[string]string) {
	t.Helper()
	if err := k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func createSecret(t testing.TB, ns, name string, data map[string]string, labels map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, StringData: data}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// change applies f to the named object and updates it.
func change(t testing.TB, obj client.Object, f func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		f()
		return k8s.Update(ctx, obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runAndFinish waits for run n's Job, finishes it and waits until it is recorded and cleaned up.
func runAndFinish(t testing.TB, ns, name string, n int64) { //nolint:unparam // each caller names its QuarksJob, "q" so far
	t.Helper()
	job := fmt.Sprintf("%s-%d", name, n)
	waitJobs(t, ns, job)
	finishJob(t, ns, job, true)
	waitStatus(t, ns, name, lastRun(n, qjv1.RunSucceeded))
	waitJobs(t, ns)
}

func TestEveryReferenceKindRunsOnDataChange(t *testing.T) {
	startOperator(t, nil)
	volume := func(src corev1.VolumeSource) func(*corev1.PodSpec) {
		return func(p *corev1.PodSpec) { p.Volumes = append(p.Volumes, corev1.Volume{Name: "v", VolumeSource: src}) }
	}
	env := func(init bool, from corev1.EnvVarSource) func(*corev1.PodSpec) {
		return func(p *corev1.PodSpec) {
			e := corev1.EnvVar{Name: "X", ValueFrom: &from}
			if init {
				p.InitContainers = append(p.InitContainers, corev1.Container{Name: "init", Image: "busybox", Env: []corev1.EnvVar{e}})
				return
			}
			p.Containers[0].Env = append(p.Containers[0].Env, e)
		}
	}
	envFrom := func(from corev1.EnvFromSource) func(*corev1.PodSpec) {
		return func(p *corev1.PodSpec) { p.Containers[0].EnvFrom = append(p.Containers[0].EnvFrom, from) }
	}
	ref := corev1.LocalObjectReference{Name: "config"}
	cases := []struct {
		name   string
		secret bool
		spec   func(*corev1.PodSpec)
	}{
		{"volume-secret", true, volume(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "config"}})},
		{"volume-configmap", false, volume(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref}})},
		{"projected-secret", true, volume(corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: ref}}}}})},
		{"projected-configmap", false, volume(corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref}}}}})},
		{"env-secret", true, env(false, corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref, Key: "k"}})},
		{"env-configmap", false, env(false, corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref, Key: "k"}})},
		{"init-env-secret", true, env(true, corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref, Key: "k"}})},
		{"envfrom-secret", true, envFrom(corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: ref}})},
		{"envfrom-configmap", false, envFrom(corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref}})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			var obj client.Object
			if c.secret {
				createSecret(t, ns, "config", map[string]string{"k": "1"}, nil)
				obj = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}}
			} else {
				createConfigMap(t, ns, "config", map[string]string{"k": "1"})
				obj = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}}
			}
			if err := k8s.Create(ctx, configJob(ns, "q", c.spec)); err != nil {
				t.Fatal(err)
			}
			runAndFinish(t, ns, "q", 1)
			change(t, obj, func() {
				switch o := obj.(type) {
				case *corev1.Secret:
					o.Data["k"] = []byte("2")
				case *corev1.ConfigMap:
					o.Data["k"] = "2"
				}
			})
			waitJobs(t, ns, "q-2")
			if q := waitStatus(t, ns, "q", lastRun(2, qjv1.RunRunning)); q.Status.LastRun.Trigger != qjv1.RunTriggerConfigChange {
				t.Errorf("trigger = %s", q.Status.LastRun.Trigger)
			}
		})
	}
}

func TestNoRunWithoutADataChange(t *testing.T) {
	op := startOperator(t, nil)
	ns := namespace(t)
	createConfigMap(t, ns, "config", map[string]string{"k": "1"})
	qjob := configJob(ns, "q", func(p *corev1.PodSpec) {
		p.Containers[0].EnvFrom = []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}},
			// An optional reference that does not exist holds nothing.
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
		}
	})
	if err := k8s.Create(ctx, qjob); err != nil {
		t.Fatal(err)
	}
	runAndFinish(t, ns, "q", 1)

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}}
	change(t, cm, func() { cm.Annotations = map[string]string{"touched": "yes"}; cm.Labels = map[string]string{"l": "1"} })
	keepJobs(t, ns, 3*testDebounce)

	// A change handled before a restart does not run again after it.
	change(t, cm, func() { cm.Data["k"] = "2" })
	runAndFinish(t, ns, "q", 2)
	op.stop()
	startOperator(t, nil)
	keepJobs(t, ns, 5*testDebounce)
	if q := getQJob(t, ns, "q"); q.Status.RunCount != 2 {
		t.Errorf("runCount = %d", q.Status.RunCount)
	}
}

func TestBurstOfChangesCoalesces(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	createConfigMap(t, ns, "config", map[string]string{"k": "0"})
	qjob := configJob(ns, "q", func(p *corev1.PodSpec) {
		p.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}}}}
	})
	if err := k8s.Create(ctx, qjob); err != nil {
		t.Fatal(err)
	}
	runAndFinish(t, ns, "q", 1)

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}}
	for i := 1; i <= 50; i++ {
		change(t, cm, func() { cm.Data["k"] = fmt.Sprint(i) })
	}
	final := references.Hash([]references.Input{{Ref: references.Ref{Kind: references.ConfigMap, Name: "config"},
		Digest: references.DataDigest(map[string][]byte{"k": []byte("50")})}})

	// Finish runs as they come until one has seen the final data.
	deadline := time.Now().Add(20 * time.Second)
	for n := int64(2); ; n++ {
		if n > 3 {
			t.Fatalf("run %d started: 50 quick changes should make at most 2 runs", n)
		}
		name := fmt.Sprintf("q-%d", n)
		waitJobs(t, ns, name)
		job := &batchv1.Job{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, job); err != nil {
			t.Fatal(err)
		}
		finishJob(t, ns, name, true)
		waitStatus(t, ns, "q", lastRun(n, qjv1.RunSucceeded))
		if job.Annotations[qjv1.AnnotationInputsHash] == final {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no run saw the final data")
		}
	}
	// The succeeded run's Job is deleted once its result is recorded.
	waitJobs(t, ns)
	keepJobs(t, ns, 5*testDebounce)
}

func TestVersionedSecretReferences(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	versioned := func(name, version string) {
		createSecret(t, ns, name, map[string]string{"password": name}, map[string]string{
			qjv1.LabelSecretKind: qjv1.SecretKindVersioned, qjv1.LabelSecretVersion: version})
	}
	versioned("foo-v1", "1")
	versioned("foo-v2", "2")
	qjob := configJob(ns, "q", func(p *corev1.PodSpec) {
		p.Containers[0].Env = []corev1.EnvVar{{Name: "P", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "foo-v1"}, Key: "password"}}}}
		p.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "foo-v2"}}}}
	})
	if err := k8s.Create(ctx, qjob); err != nil {
		t.Fatal(err)
	}
	secretsOfJob := func(name string) string {
		job := &batchv1.Job{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, job); err != nil {
			t.Fatal(err)
		}
		spec := job.Spec.Template.Spec
		return spec.Containers[0].Env[0].ValueFrom.SecretKeyRef.Name + "," + spec.Volumes[0].Secret.SecretName
	}
	waitJobs(t, ns, "q-1")
	if got := secretsOfJob("q-1"); got != "foo-v2,foo-v2" {
		t.Errorf("run 1 reads %s; want the newest version everywhere", got)
	}
	finishJob(t, ns, "q-1", true)
	waitJobs(t, ns)

	versioned("foo-v3", "3")
	waitJobs(t, ns, "q-2")
	if got := secretsOfJob("q-2"); got != "foo-v3,foo-v3" {
		t.Errorf("run 2 reads %s", got)
	}
	finishJob(t, ns, "q-2", true)
	waitJobs(t, ns)

	// Other families, however similar their names, start nothing.
	versioned("my-foo-v9", "9")
	versioned("foobar-v3", "3")
	keepJobs(t, ns, 5*testDebounce)
}

func TestMissingReferenceHoldsTheRun(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	qjob := configJob(ns, "q", func(p *corev1.PodSpec) {
		p.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "later"}}}}
	})
	if err := k8s.Create(ctx, qjob); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ns, "q", func(q *qjv1.QuarksJob) error {
		c := meta.FindStatusCondition(q.Status.Conditions, qjv1.ConditionWaitingForReferences)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "ConfigMap later") {
			return fmt.Errorf("WaitingForReferences = %+v", c)
		}
		return nil
	})
	keepJobs(t, ns, 500*time.Millisecond)
	createConfigMap(t, ns, "later", map[string]string{"k": "v"})
	waitJobs(t, ns, "q-1")
	waitStatus(t, ns, "q", func(q *qjv1.QuarksJob) error {
		if c := meta.FindStatusCondition(q.Status.Conditions, qjv1.ConditionWaitingForReferences); c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("WaitingForReferences = %+v", c)
		}
		return nil
	})
}

// TestDoneWithoutARunReactsToChanges: a one-off already done but with no run
// recorded (moved from the original operator) does not run for what is
// there; it records the data as its baseline, and a change runs it.
func TestDoneWithoutARunReactsToChanges(t *testing.T) {
	startOperator(t, nil)
	ns := namespace(t)
	createConfigMap(t, ns, "config", map[string]string{"k": "1"})
	qjob := configJob(ns, "moved", func(p *corev1.PodSpec) {
		p.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "config"}}}}
	})
	qjob.Spec.Trigger.Strategy = qjv1.StrategyDone
	if err := k8s.Create(ctx, qjob); err != nil {
		t.Fatal(err)
	}
	baseline := waitStatus(t, ns, "moved", func(q *qjv1.QuarksJob) error {
		if q.Status.InputsHash == "" {
			return fmt.Errorf("no baseline recorded")
		}
		return nil
	}).Status.InputsHash
	keepJobs(t, ns, 3*testDebounce)
	if q := getQJob(t, ns, "moved"); q.Status.LastRun != nil {
		t.Fatalf("a done one-off ran without a change: %+v", q.Status.LastRun)
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "config"}}
	change(t, cm, func() { cm.Data["k"] = "2" })
	waitJobs(t, ns, "moved-1")
	q := waitStatus(t, ns, "moved", lastRun(1, qjv1.RunRunning))
	if q.Status.LastRun.Trigger != qjv1.RunTriggerConfigChange || q.Status.LastRun.InputsHash == baseline {
		t.Errorf("run 1: %+v; want a configuration change run with the new data's hash", q.Status.LastRun)
	}
}
