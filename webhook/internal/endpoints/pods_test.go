package endpoints_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/api/validation/validationtest"
	"code.cloudfoundry.org/quarks-job/webhook/internal/endpoints"
	"code.cloudfoundry.org/quarks-job/webhook/internal/inject"
)

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T: %v", obj, err)
	}
}

func persister(pod *corev1.Pod) *corev1.Container {
	for i, c := range pod.Spec.InitContainers {
		if c.Name == upload.PersisterContainerName {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

func TestPodWithOutputGetsThePersister(t *testing.T) {
	ns := namespace(t, nil)
	pod := jobPod(ns, `{"gen":["creds.json"],"more":["a.json","b.json"]}`, "gen", "more", "quiet")
	create(t, pod)

	p := persister(pod)
	if p == nil {
		t.Fatalf("no persister in the created pod: %+v", pod.Spec.InitContainers)
	}
	if p.Image != injectCfg.Image || p.RestartPolicy == nil || *p.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("persister image %s restartPolicy %v; want %s, a native sidecar", p.Image, p.RestartPolicy, injectCfg.Image)
	}
	for i, want := range []string{"quarks-job-output-gen", "quarks-job-output-more", ""} {
		c := pod.Spec.Containers[i]
		switch {
		case want == "" && len(c.VolumeMounts) != 0:
			t.Errorf("container %s declares no output but mounts %+v", c.Name, c.VolumeMounts)
		case want != "" && (len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != want || c.VolumeMounts[0].MountPath != upload.OutputRoot):
			t.Errorf("container %s mounts %+v, want %s at %s", c.Name, c.VolumeMounts, want, upload.OutputRoot)
		}
	}
	mounts := map[string]string{}
	for _, m := range p.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts["/mnt/quarks/gen"] != "quarks-job-output-gen" || mounts["/mnt/quarks/more"] != "quarks-job-output-more" || mounts["/var/run/secrets/quarks-job"] != upload.TokenVolumeName {
		t.Errorf("persister mounts %v", mounts)
	}
	if got := *pod.Spec.TerminationGracePeriodSeconds; got != injectCfg.MinGracePeriodSeconds {
		t.Errorf("terminationGracePeriodSeconds = %d, want %d", got, injectCfg.MinGracePeriodSeconds)
	}
	env := map[string]string{}
	for _, e := range p.Env {
		env[e.Name] = e.Value
	}
	if env[upload.EnvCABundle] != string(testCABundle) || env[upload.EnvEndpoint] != injectCfg.Endpoint || env[upload.EnvOutputFiles] != pod.Annotations[qjv1.AnnotationOutputFiles] {
		t.Errorf("persister env = %v", env)
	}
}

func TestPodWithoutOutputIsAdmittedUnchanged(t *testing.T) {
	ns := namespace(t, nil)
	before := callCount(endpoints.PodPath)
	pod := jobPod(ns, "", "gen")
	create(t, pod)
	if callCount(endpoints.PodPath) == before {
		t.Error("a pod with the QuarksJob label was not sent to the webhook")
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Volumes) != 0 || pod.Spec.TerminationGracePeriodSeconds == nil || *pod.Spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("a pod without declared output was changed: init %+v volumes %+v grace %v", pod.Spec.InitContainers, pod.Spec.Volumes, pod.Spec.TerminationGracePeriodSeconds)
	}
}

func TestPodWithoutLabelIsNeverSentToTheWebhook(t *testing.T) {
	ns := namespace(t, nil)
	before := callCount(endpoints.PodPath)
	pod := jobPod(ns, `{"gen":["creds.json"]}`, "gen")
	delete(pod.Labels, qjv1.LabelQJobName)
	create(t, pod)
	if got := callCount(endpoints.PodPath); got != before {
		t.Errorf("a pod without the QuarksJob label was sent to the webhook (%d calls)", got-before)
	}
	if persister(pod) != nil || len(pod.Spec.Volumes) != 0 {
		t.Errorf("a pod without the QuarksJob label was changed: %+v", pod.Spec)
	}
}

func TestInjectingAnInjectedPodIsANoOp(t *testing.T) {
	ns := namespace(t, nil)
	pod := jobPod(ns, `{"gen":["creds.json"]}`, "gen")
	create(t, pod)
	if persister(pod) == nil {
		t.Fatal("no persister injected")
	}

	// The stored pod, as the API server defaulted it, sent to the handler
	// again: no patch.
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	handler := &inject.Handler{Config: injectCfg, CABundle: func() []byte { return testCABundle }, Decoder: admission.NewDecoder(scheme)}
	resp := handler.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Namespace: ns, Object: runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("re-injection: allowed %v, patches %+v; want allowed without patches", resp.Allowed, resp.Patches)
	}

	// The injected pod created again through the API server: one persister,
	// the same volumes.
	again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "again-", Namespace: ns, Labels: pod.Labels, Annotations: pod.Annotations}, Spec: *pod.Spec.DeepCopy()}
	create(t, again)
	if !equality.Semantic.DeepEqual(again.Spec.InitContainers, pod.Spec.InitContainers) || !equality.Semantic.DeepEqual(again.Spec.Volumes, pod.Spec.Volumes) ||
		!equality.Semantic.DeepEqual(again.Spec.Containers, pod.Spec.Containers) {
		t.Errorf("creating the injected pod again changed it:\nfirst: %+v\nagain: %+v", pod.Spec, again.Spec)
	}
}

func TestPodWithBadOutputDeclarationIsRejected(t *testing.T) {
	ns := namespace(t, nil)
	err := k8s.Create(context.Background(), jobPod(ns, `{"ghost":["a.json"]}`, "gen"))
	if err == nil || !strings.Contains(err.Error(), `declares output for container "ghost", which is not in spec.containers`) {
		t.Errorf("error = %v, want the missing container named", err)
	}
}

// restrictedPod is a pod that PodSecurity "restricted" admits.
func restrictedPod(pod *corev1.Pod) *corev1.Pod {
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](1000),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].SecurityContext = &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
	}
	return pod
}

func TestInjectedPodPassesPodSecurityRestricted(t *testing.T) {
	ns := namespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})

	// The control: PodSecurity is enforced here.
	if err := k8s.Create(context.Background(), jobPod(ns, `{"gen":["a.json"]}`, "gen")); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("a pod that is not restricted was admitted (err = %v); PodSecurity is not in force", err)
	}

	pod := restrictedPod(jobPod(ns, `{"gen":["a.json"]}`, "gen", "other"))
	create(t, pod)
	if persister(pod) == nil {
		t.Error("no persister injected")
	}
}

func TestQuarksJobPodsWaitWhileTheWebhookIsDown(t *testing.T) {
	ns := namespace(t, map[string]string{"webhook-down-test": "true"})
	// A configuration like the chart's whose server is gone: scoped to this
	// namespace so the other tests are not affected.
	down := endpoints.MutatingWebhookConfiguration("quarks-job-webhook-down", endpoints.Service{}, endpoints.DefaultPodTimeoutSeconds)
	down.Webhooks = down.Webhooks[:1]
	down.Webhooks[0].Name = "down.pods.quarks.cloudfoundry.org"
	down.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/mutate-v1-pod"), CABundle: testCABundle}
	down.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-down-test": "true"}}
	create(t, down)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), down) })

	err := k8s.Create(context.Background(), jobPod(ns, "", "gen"))
	if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("a QuarksJob pod was created without its webhook (err = %v)", err)
	}
	other := jobPod(ns, "", "app")
	other.Labels = map[string]string{"app": "unrelated"}
	create(t, other)

	// The QuarksJob webhooks fail open: QuarksJobs can still be created.
	downQJ := endpoints.ValidatingWebhookConfiguration("quarks-job-webhook-down", endpoints.Service{})
	downQJ.Webhooks[0].Name = "down.quarksjobs.quarks.cloudfoundry.org"
	downQJ.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/validate"), CABundle: testCABundle}
	downQJ.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"webhook-down-test": "true"}}
	create(t, downQJ)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), downQJ) })
	qj := validationtest.GoodQuarksJob()
	qj.Namespace = ns
	create(t, qj)
}
