//go:build e2e

package product_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/releaseutil"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// TestProduct runs the independent tests in parallel, then the ones that change the installed
// operator one after another, and ends with helm uninstall.
func TestProduct(t *testing.T) {
	start := time.Now()
	t.Run("parallel", func(t *testing.T) {
		t.Run("examples", testExamples)
		t.Run("write-on-failure", testWriteOnFailure)
		t.Run("bad-output", testBadOutput)
		t.Run("two-containers", testTwoContainers)
		t.Run("restricted-namespace", testRestrictedNamespace)
		t.Run("created-before-its-configmap", testCreatedBeforeItsConfigMap)
		t.Run("versioned-secret-reference", testVersionedSecretReference)
		t.Run("forgery", testForgery)
		t.Run("patched-pod", testPatchedPod)
		t.Run("many-pods", testManyPods)
		t.Run("image-cannot-be-pulled", testImageCannotBePulled)
		t.Run("kubectl-qjob", testPlugin)
	})
	t.Logf("figure: parallel tests took %s", time.Since(start).Round(100*time.Millisecond))
	// Alone: its 5,000 Secret writes would slow the uploads the parallel tests time.
	t.Run("fan-out-of-5000", testFanOutOf5000)
	// Alone: it times the victim's uploads, and floods the endpoint.
	t.Run("tenant-attacks", testTenantAttacks)
	t.Run("webhook-unavailable", testWebhookUnavailable)
	t.Run("controller-unreachable", testControllerUnreachable)
	t.Run("helm-upgrade", testHelmUpgrade)
	t.Run("helm-uninstall", testHelmUninstall)
	t.Run("switch-from-original", testSwitchFromOriginal)
}

const webhookSelector = "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=webhook"

func scaleWebhook(ctx context.Context, replicas int32) error {
	_, err := suite.kube.AppsV1().Deployments(releaseNS).UpdateScale(ctx, webhookDeployment, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: webhookDeployment, Namespace: releaseNS},
		Spec:       autoscalingv1.ScaleSpec{Replicas: replicas}}, metav1.UpdateOptions{})
	return err
}

// testWebhookUnavailable: with the webhook scaled to zero a QuarksJob's pod is not created
// (FailedCreate) while an unrelated pod in the namespace starts; with the webhook back the pod
// is created, with its persister, and the run succeeds.
func testWebhookUnavailable(t *testing.T) {
	e := newEnv(t, "nowebhook", nil)
	ctx := e.ctx
	d, err := suite.kube.AppsV1().Deployments(releaseNS).Get(ctx, webhookDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := *d.Spec.Replicas
	t.Cleanup(func() {
		// Whatever happened, the later tests need the webhook.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := scaleWebhook(ctx, replicas); err != nil {
			t.Errorf("scaling the webhook back to %d: %v", replicas, err)
		}
		if err := waitRolledOut(ctx, webhookDeployment); err != nil {
			t.Errorf("the webhook did not come back: %v", err)
		}
	})

	if err := scaleWebhook(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = poll(waitCtx, 500*time.Millisecond, func() (bool, string) {
		pods, err := suite.kube.CoreV1().Pods(releaseNS).List(waitCtx, metav1.ListOptions{LabelSelector: webhookSelector})
		if err != nil {
			return false, err.Error()
		}
		if n := len(pods.Items); n > 0 {
			return false, fmt.Sprintf("%d webhook pods left", n)
		}
		return true, ""
	})
	cancel()
	if err != nil {
		t.Fatalf("scaling the webhook to 0: %v", err)
	}

	e.apply("qjob", []byte(outputJob("waits", `echo '{"waited":"yes"}' > /mnt/quarks/out.json`, false)))
	q := e.waitQJob("waits", "its run's Job to be created", func(q *qjv1.QuarksJob) (bool, string) {
		if q.Status.LastRun == nil {
			return false, "no run yet"
		}
		return true, ""
	})
	job := q.Status.LastRun.JobName
	waitCtx, cancel = context.WithTimeout(ctx, time.Minute)
	err = poll(waitCtx, 500*time.Millisecond, func() (bool, string) {
		events := e.events("Job", job)
		return containsAny(events, "FailedCreate"), fmt.Sprintf("events of Job %s: %q", job, events)
	})
	cancel()
	if err != nil {
		t.Fatalf("no FailedCreate event on Job %s while the webhook is down: %v", job, err)
	}
	t.Logf("while the webhook is down: %q", e.events("Job", job))

	// An unrelated pod is not held by the webhook (objectSelector).
	unrelated := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "unrelated"},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"sh", "-c", "echo unrelated"}}},
		},
	}
	created := time.Now()
	if _, err := suite.kube.CoreV1().Pods(e.namespace).Create(ctx, unrelated, metav1.CreateOptions{}); err != nil {
		t.Fatalf("an unrelated pod cannot be created while the webhook is down: %v", err)
	}
	waitCtx, cancel = context.WithTimeout(ctx, time.Minute)
	err = poll(waitCtx, 250*time.Millisecond, func() (bool, string) {
		p, err := suite.kube.CoreV1().Pods(e.namespace).Get(waitCtx, "unrelated", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodSucceeded, "phase " + string(p.Status.Phase)
	})
	cancel()
	if err != nil {
		t.Fatalf("the unrelated pod did not run while the webhook is down: %v", err)
	}
	t.Logf("figure: unrelated pod created → succeeded with the webhook down: %s", ms(time.Since(created)))
	if pods := e.runPods("waits", 1); len(pods) != 0 {
		t.Fatalf("QuarksJob pod %s was created while no webhook answers", pods[0].pod.Name)
	}

	// A QuarksJob the webhook would refuse is admitted while it is down (the QuarksJob
	// webhooks fail open); its run fails at once with admission's message, and no Job exists.
	bad := time.Now()
	e.apply("invalid qjob", []byte(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: invalid
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      ghost:
        out.json:
          name: invalid-out
  template:
    spec:
      template:
        spec:
          containers:
          - name: main
            image: busybox
`))
	q = e.waitRunFinished("invalid", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	if msg := q.Status.LastRun.Message; !strings.Contains(msg, "spec.output.outputMap[ghost]") || !strings.Contains(msg, "no container of this name") {
		t.Errorf("the invalid QuarksJob's run says %q; want admission's message", msg)
	}
	if _, err := suite.kube.BatchV1().Jobs(e.namespace).Get(ctx, q.Status.LastRun.JobName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the invalid QuarksJob's Job: %v; want none", err)
	}
	t.Logf("figure: invalid QuarksJob admitted with the webhook down → run Failed: %s", ms(time.Since(bad)))

	back := time.Now()
	if err := scaleWebhook(ctx, replicas); err != nil {
		t.Fatal(err)
	}
	if err := waitRolledOut(ctx, webhookDeployment); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	t.Logf("figure: webhook scaled up → Available: %s", ms(ready.Sub(back)))
	q = e.waitRunFinished("waits", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	pod := e.onlyRunPod("waits", 1)
	wantPersister(t, pod.pod)
	t.Logf("figure: webhook Available → QuarksJob pod created: %s (the Job controller's retry back-off)", ms(pod.created.Sub(ready)))
	wantData(t, e.secret("out"), map[string]string{"waited": "yes"})
}

// testHelmUpgrade: helm upgrade with --set overrides reaches the components: the controller's
// log level, and a persister image pinned to another tag, which the next run's pod uses.
func testHelmUpgrade(t *testing.T) {
	ctx := t.Context()
	pinned := suite.imageRepo + "/quarks-job-persister:" + suite.pinnedTag
	if suite.registry != "" {
		if err := tagInRegistry(ctx, suite.registry, suite.imageRepo+"/quarks-job-persister", suite.imageTag, suite.pinnedTag); err != nil {
			t.Fatalf("tagging the persister image as %s in the registry %s: %v", pinned, suite.registry, err)
		}
	}
	cfg, err := helmConfig()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := parseSets(append(slices.Clone(suite.sets), "controller.logLevel=debug", "persister.image.tag="+suite.pinnedTag))
	if err != nil {
		t.Fatal(err)
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = releaseNS
	up.Timeout = installTimeout
	start := time.Now()
	rel, err := up.RunWithContext(ctx, releaseName, suite.chart, vals)
	if err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if rel.Version != 2 {
		t.Errorf("release version %d after the upgrade, want 2", rel.Version)
	}
	if err := waitUpgraded(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: helm upgrade → both Deployments rolled out: %s", ms(time.Since(start)))

	controller := onlyPod(t, "app.kubernetes.io/instance="+releaseName+",app.kubernetes.io/component=controller")
	if !slices.Contains(controller.Spec.Containers[0].Args, "--log-level=debug") {
		t.Errorf("the controller runs with %v, want --log-level=debug", controller.Spec.Containers[0].Args)
	}

	e := newEnv(t, "upgrade", nil)
	e.apply("qjob", []byte(outputJob("pinned", `echo '{"pinned":"yes"}' > /mnt/quarks/out.json`, false)))
	q := e.waitRunFinished("pinned", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	wantData(t, e.secret("out"), map[string]string{"pinned": "yes"})
	pod := e.onlyRunPod("pinned", 1)
	c := wantPersister(t, pod.pod)
	if c.Image != pinned {
		t.Errorf("the run's persister image is %s, want the pinned %s", c.Image, pinned)
	}
	for _, s := range pod.pod.Status.InitContainerStatuses {
		if s.Name == c.Name {
			// containerd reports one of the image's names (possibly the first tag it pulled with
			// this digest), so the spec is what is checked above.
			t.Logf("the persister ran image %s (reported as %s)", s.ImageID, s.Image)
		}
	}

	logs, err := suite.kube.CoreV1().Pods(releaseNS).GetLogs(controller.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("controller logs: %v", err)
	}
	t.Logf("the controller logged %d debug lines since the upgrade", bytes.Count(logs, []byte(`"level":"debug"`)))
}

// waitUpgraded waits, within installTimeout, until the operator is ready after a helm upgrade
// and no pod of the previous revision is left.
func waitUpgraded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	if err := waitOperatorReady(ctx); err != nil {
		return err
	}
	for _, name := range []string{controllerDeployment, webhookDeployment} {
		if err := waitOnlyCurrentPods(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// waitOnlyCurrentPods waits until every pod of the Deployment belongs to its newest ReplicaSet
// and none is terminating: an old webhook pod would still inject the old persister image.
func waitOnlyCurrentPods(ctx context.Context, deployment string) error {
	return poll(ctx, 500*time.Millisecond, func() (bool, string) {
		d, err := suite.kube.AppsV1().Deployments(releaseNS).Get(ctx, deployment, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		selector := metav1.FormatLabelSelector(d.Spec.Selector)
		pods, err := suite.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error()
		}
		rss, err := suite.kube.AppsV1().ReplicaSets(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error()
		}
		newest := ""
		for _, rs := range rss.Items {
			if rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"] {
				newest = rs.Labels["pod-template-hash"]
			}
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || p.Labels["pod-template-hash"] != newest {
				return false, fmt.Sprintf("deployment %s: old pod %s still there", deployment, p.Name)
			}
		}
		return newest != "", "no current ReplicaSet"
	})
}

func onlyPod(t *testing.T, selector string) *corev1.Pod {
	t.Helper()
	pods, err := suite.kube.CoreV1().Pods(releaseNS).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d pods match %s, want 1", len(live), selector)
	}
	return &live[0]
}

// tagInRegistry tags an image a second time in a registry (the local cluster's, plain HTTP):
// the manifest of repo:from is put as repo:to.
func tagInRegistry(ctx context.Context, registry, repo, from, to string) error {
	// docker.io/org/name → org/name in the mirror.
	path := repo
	if first, rest, ok := strings.Cut(repo, "/"); ok && strings.ContainsAny(first, ".:") {
		path = rest
	}
	base := fmt.Sprintf("http://%s/v2/%s/manifests/", registry, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+from, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	manifest, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s%s: %s: %s", base, from, resp.Status, manifest)
	}
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, base+to, bytes.NewReader(manifest))
	if err != nil {
		return err
	}
	put.Header.Set("Content-Type", resp.Header.Get("Content-Type"))
	resp, err = http.DefaultClient.Do(put)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s%s: %s: %s", base, to, resp.Status, body)
	}
	return nil
}

// testHelmUninstall: helm uninstall removes every object of the release, and keeps the CRD (and
// with it the users' QuarksJobs).
func testHelmUninstall(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, "uninstall", nil)
	e.apply("qjob", []byte(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: survives
spec:
  trigger:
    strategy: manual
  template:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: c
            image: busybox
`))

	cfg, err := helmConfig()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := action.NewGet(cfg).Run(releaseName)
	if err != nil {
		t.Fatalf("helm get: %v", err)
	}
	var objects []*unstructured.Unstructured
	for _, doc := range releaseutil.SplitManifests(rel.Manifest) {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatalf("release manifest: %v", err)
		}
		if len(obj.Object) > 0 {
			objects = append(objects, obj)
		}
	}

	un := action.NewUninstall(cfg)
	un.Wait = true
	un.Timeout = 2 * time.Minute
	start := time.Now()
	if _, err := un.Run(releaseName); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	t.Logf("figure: helm uninstall (waiting for deletion): %s", ms(time.Since(start)))

	kinds := map[string]int{}
	for _, obj := range objects {
		gvk := obj.GroupVersionKind()
		kinds[gvk.Kind]++
		mapping, err := suite.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", gvk.Kind, obj.GetName(), err)
			continue
		}
		client := suite.dynamic.Resource(mapping.Resource)
		var getErr error
		if ns := obj.GetNamespace(); ns != "" {
			_, getErr = client.Namespace(ns).Get(ctx, obj.GetName(), metav1.GetOptions{})
		} else {
			_, getErr = client.Get(ctx, obj.GetName(), metav1.GetOptions{})
		}
		switch {
		case gvk.Kind == "CustomResourceDefinition":
			if getErr != nil {
				t.Errorf("the CRD %s is gone after helm uninstall (crds.keep): %v", obj.GetName(), getErr)
			}
		case getErr == nil:
			t.Errorf("%s %s/%s is left after helm uninstall", gvk.Kind, obj.GetNamespace(), obj.GetName())
		case !apierrors.IsNotFound(getErr):
			t.Errorf("%s %s: %v", gvk.Kind, obj.GetName(), getErr)
		}
	}
	t.Logf("the release had %d objects: %v", len(objects), kinds)
	if kinds["Deployment"] != 2 || kinds["MutatingWebhookConfiguration"] != 1 || kinds["ClusterRole"] == 0 || kinds["CustomResourceDefinition"] != 1 {
		t.Errorf("the release's manifest lacks expected kinds: %v", kinds)
	}

	// Nothing labeled as the release's is left anywhere (e.g. objects the chart stopped rendering).
	selector := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/part-of=quarks-job"}
	var left []string
	if l, err := suite.kube.RbacV1().ClusterRoles().List(ctx, selector); err == nil {
		for _, o := range l.Items {
			left = append(left, "ClusterRole/"+o.Name)
		}
	}
	if l, err := suite.kube.RbacV1().ClusterRoleBindings().List(ctx, selector); err == nil {
		for _, o := range l.Items {
			left = append(left, "ClusterRoleBinding/"+o.Name)
		}
	}
	if l, err := suite.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, selector); err == nil {
		for _, o := range l.Items {
			left = append(left, "MutatingWebhookConfiguration/"+o.Name)
		}
	}
	if l, err := suite.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, selector); err == nil {
		for _, o := range l.Items {
			left = append(left, "ValidatingWebhookConfiguration/"+o.Name)
		}
	}
	if l, err := suite.kube.AppsV1().Deployments(releaseNS).List(ctx, selector); err == nil {
		for _, o := range l.Items {
			left = append(left, "Deployment/"+o.Name)
		}
	}
	if l, err := suite.kube.CoreV1().Services(releaseNS).List(ctx, selector); err == nil {
		for _, o := range l.Items {
			left = append(left, "Service/"+o.Name)
		}
	}
	if len(left) > 0 {
		t.Errorf("left after helm uninstall: %v", left)
	}

	// The operator's pods go too.
	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err = poll(waitCtx, time.Second, func() (bool, string) {
		pods, err := suite.kube.CoreV1().Pods(releaseNS).List(waitCtx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + releaseName})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 0, fmt.Sprintf("pods left: %v", podNames(pods.Items))
	})
	if err != nil {
		t.Errorf("the operator's pods are left after helm uninstall: %v", err)
	}

	if _, err := e.qjob("survives"); err != nil {
		t.Errorf("a QuarksJob did not survive helm uninstall: %v", err)
	}
	if _, err := action.NewHistory(cfg).Run(releaseName); err == nil {
		t.Errorf("helm still knows release %s", releaseName)
	}
	secrets, err := suite.kube.CoreV1().Secrets(releaseNS).List(ctx, metav1.ListOptions{})
	if err == nil {
		var names []string
		for _, s := range secrets.Items {
			names = append(names, s.Name)
		}
		// The certificate Secrets the webhook made are not the release's (docs/guide.md).
		t.Logf("Secrets left in %s (the webhook's certificates, documented): %v", releaseNS, names)
	}
}

const controllerSelector = "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=controller"

// testControllerUnreachable: when the controller (and so the output endpoint) is down as a run's
// container exits, the persister gives up before the grace period ends and the pod finishes;
// with the controller back, the run is Failed because its output was never persisted.
func testControllerUnreachable(t *testing.T) {
	e := newEnv(t, "nocontroller", nil)
	ctx := e.ctx
	d, err := suite.kube.AppsV1().Deployments(releaseNS).Get(ctx, controllerDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := *d.Spec.Replicas
	scale := func(ctx context.Context, n int32) error {
		_, err := suite.kube.AppsV1().Deployments(releaseNS).UpdateScale(ctx, controllerDeployment, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: controllerDeployment, Namespace: releaseNS},
			Spec:       autoscalingv1.ScaleSpec{Replicas: n}}, metav1.UpdateOptions{})
		return err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := scale(ctx, replicas); err != nil {
			t.Errorf("scaling the controller back to %d: %v", replicas, err)
		}
		if err := waitRolledOut(ctx, controllerDeployment); err != nil {
			t.Errorf("the controller did not come back: %v", err)
		}
	})

	// A template with ttlSecondsAfterFinished: 0 keeps its run's result, and the restart below
	// does not run it again (the controller drops the ttl and deletes the Job itself).
	ttlJob := strings.Replace(outputJobTo("ttl", "ttl-out", `echo '{"k":"v"}' > /mnt/quarks/out.json`, false),
		"  template:\n    spec:\n", "  template:\n    spec:\n      ttlSecondsAfterFinished: 0\n", 1)
	if !strings.Contains(ttlJob, "ttlSecondsAfterFinished: 0") {
		t.Fatalf("the ttl manifest lacks its ttl:\n%s", ttlJob)
	}
	e.apply("ttl qjob", []byte(ttlJob))
	q := e.waitRunFinished("ttl", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	wantData(t, e.secret("ttl-out"), map[string]string{"k": "v"})

	// The container outlives the controller: it writes valid output after 25 s.
	e.apply("qjob", []byte(outputJob("orphan", `sleep 25; echo '{"k":"v"}' > /mnt/quarks/out.json`, false)))
	e.waitQJob("orphan", "run 1 to start", func(q *qjv1.QuarksJob) (bool, string) {
		if q.Status.LastRun == nil {
			return false, "no run yet"
		}
		return true, ""
	})
	if err := scale(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = poll(waitCtx, 500*time.Millisecond, func() (bool, string) {
		pods, err := suite.kube.CoreV1().Pods(releaseNS).List(waitCtx, metav1.ListOptions{LabelSelector: controllerSelector})
		if err != nil {
			return false, err.Error()
		}
		if n := len(pods.Items); n > 0 {
			return false, fmt.Sprintf("%d controller pods left", n)
		}
		return true, ""
	})
	cancel()
	if err != nil {
		t.Fatalf("scaling the controller to 0: %v", err)
	}

	// The pod must finish on its own: the persister's upload timeout is below the grace period.
	waitCtx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	var pod podRecord
	err = poll(waitCtx, time.Second, func() (bool, string) {
		pods := e.runPods("orphan", 1)
		if len(pods) != 1 {
			return false, fmt.Sprintf("%d pods", len(pods))
		}
		pod = pods[0]
		if pod.finished.IsZero() && pod.deletedAt.IsZero() {
			return false, "pod " + pod.pod.Name + " still " + string(pod.pod.Status.Phase)
		}
		return true, ""
	})
	cancel()
	if err != nil {
		t.Fatalf("the pod did not finish with the controller down: %v", err)
	}
	exited, ok := pod.exited["work"]
	if !ok {
		t.Fatalf("container work of pod %s was not seen terminated", pod.pod.Name)
	}
	took := pod.finished.Sub(exited)
	t.Logf("figure: container exit → pod finished with the controller down: %s", ms(took))
	if grace := pod.pod.Spec.TerminationGracePeriodSeconds; grace == nil || took > time.Duration(*grace)*time.Second+15*time.Second {
		t.Errorf("pod finished %s after its container exited; the persister should give up within the grace period", took)
	}

	if err := scale(ctx, replicas); err != nil {
		t.Fatal(err)
	}
	q = e.waitRunFinished("orphan", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	if !strings.Contains(q.Status.LastRun.Message, "not persisted") {
		t.Errorf("run message %q does not say the output was not persisted", q.Status.LastRun.Message)
	}
	e.noSecret("out")

	// After the restart the ttl QuarksJob still has its one succeeded run.
	e.staysAtRunCount("ttl", 1)
	q, err = e.qjob("ttl")
	if err != nil {
		t.Fatal(err)
	}
	e.wantRun(q, 1, qjv1.RunSucceeded)
}
