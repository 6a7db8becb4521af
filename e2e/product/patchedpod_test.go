//go:build e2e

package product_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// testPatchedPod is a tenant that may create, read and patch pods and read Jobs, and has no
// right on Secrets or QuarksJobs, against another party's running run: it runs a pod of its
// own with no claims (so no policy looks at it) that prints a projected token of the
// operator's audience, patches the pod into the running run's Job once it has succeeded (the
// Job controller's label and an ownerReference; then also the Job's tracking finalizer, which
// makes the Job controller count it), and uploads its own data with the token. The policy
// refuses the patch; past the policy the upload is refused, the run's result is only ever
// proven by its own pods, and the victim's Secrets hold the victim's data.
func testPatchedPod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "patched", nil)
	ctx := e.ctx
	e.apply("slow victim", []byte(fmt.Sprintf(victimQJob, "slowvic", 30)))
	cfg := e.serviceAccount("tenant", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list", "watch"}},
	})
	tenant, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pastPolicy := pastPolicyClient(t)
	endpoint := "https://quarks-job-output." + releaseNS + ".svc" + upload.Path

	for n, tracked := range []bool{false, true} {
		run := int64(n + 1)
		e.patchQJob("slowvic", `{"spec":{"trigger":{"strategy":"now"}}}`)
		q := e.waitQJob("slowvic", fmt.Sprintf("run %d running", run), func(q *qjv1.QuarksJob) (bool, string) {
			if r := q.Status.LastRun; r == nil || r.Number != run || r.Result != qjv1.RunRunning || r.JobUID == "" {
				return false, "not recorded as running: " + runString(r)
			}
			return true, ""
		})
		record := q.Status.LastRun

		// 1. The tenant's own pod: no reserved label, annotation or ownerReference.
		thief := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("thief-%d", run)},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "gen", Image: "busybox", Command: []string{"cat", "/var/run/tenant/token"},
					VolumeMounts: []corev1.VolumeMount{{Name: "token", MountPath: "/var/run/tenant"}}}},
				Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
						Audience: upload.Audience, ExpirationSeconds: ptr.To[int64](3600), Path: "token"}}}}}}}}}
		if _, err := tenant.CoreV1().Pods(e.namespace).Create(ctx, thief, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the tenant's own pod: %v", err)
		}
		if pod := e.waitPodFinishedOrGone(thief.Name); pod == nil || pod.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("the tenant's pod did not succeed: %+v", pod)
		}
		token, err := tenant.CoreV1().Pods(e.namespace).GetLogs(thief.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || len(token) == 0 {
			t.Fatalf("the tenant reads its pod's token: %v", err)
		}

		// 2. The pod patched into the running run's Job.
		meta := map[string]any{
			"labels": map[string]string{batchv1.ControllerUidLabel: string(record.JobUID), batchv1.JobNameLabel: record.JobName},
			"ownerReferences": []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: record.JobName,
				UID: record.JobUID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		}
		if tracked {
			meta["finalizers"] = []string{batchv1.JobTrackingFinalizer}
		}
		patch, err := json.Marshal(map[string]any{"metadata": meta})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tenant.CoreV1().Pods(e.namespace).Patch(ctx, thief.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		wantRefusedByPolicy(t, "the tenant's pod patched into the run's Job", err)
		if _, err := pastPolicy.CoreV1().Pods(e.namespace).Patch(ctx, thief.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("the patch past the policy: %v", err)
		}

		// 3. The tenant's upload with the stolen token.
		out := e.runProbe("upload", endpoint, string(token), "gen", "creds.json", `{"user":"tenant"}`)
		t.Logf("run %d (tracking finalizer %t): %s", run, tracked, strings.TrimSpace(out))
		// Counted by the Job controller, the tenant's pod may have ended the run already: then
		// the upload is too late (409) before it is looked at.
		refused := strings.Contains(out, "upload: 403: ") && strings.Contains(out, "is not a pod of run")
		if tracked && strings.Contains(out, "upload: 409: ") && strings.Contains(out, "has already ended") {
			refused = true
		}
		if !refused {
			t.Errorf("the tenant's upload: %s; want 403, not a pod of the run", out)
		}

		// 4. The run's result is proven by its own pods only.
		q = e.waitRunFinished("slowvic", run)
		switch r := q.Status.LastRun; {
		case !tracked:
			e.wantRun(q, run, qjv1.RunSucceeded)
		case r.Result == qjv1.RunSucceeded:
			// The run's own pod succeeded before the Job controller counted the tenant's:
			// the run proved its completion (its output is checked below).
			t.Logf("run %d: %s (its own pod succeeded first)", run, r.Message)
		case !strings.Contains(r.Message, "is not a pod of this run"):
			t.Errorf("run %d: %q; want it to name the tenant's pod as no pod of the run", run, r.Message)
		default:
			t.Logf("run %d: %s", run, r.Message)
		}
		if pods, err := pastPolicy.CoreV1().Pods(e.namespace).Get(ctx, thief.Name, metav1.GetOptions{}); err == nil && len(pods.Finalizers) > 0 {
			// Let the pod go: the Job controller leaves a finalizer it did not add.
			if _, err := pastPolicy.CoreV1().Pods(e.namespace).Patch(ctx, thief.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
				t.Errorf("removing the finalizer of %s: %v", thief.Name, err)
			}
		}
	}

	// Whoever may create QuarksJobs may not set the labels the controller writes on output
	// Secrets (a secret-kind label would make a plain output pass for a version of another
	// QuarksJob's family): refused at admission.
	squatter := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: labeller
spec:
  trigger:
    strategy: once
  output:
    secretLabels:
      quarks.cloudfoundry.org/secret-kind: versionedSecret
    outputMap:
      gen:
        cert.json:
          name: slowvic-cert-v9
  template:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: gen
            image: busybox
`), &squatter.Object); err != nil {
		t.Fatal(err)
	}
	_, err = suite.dynamic.Resource(qjv1.GroupVersion.WithResource("quarksjobs")).Namespace(e.namespace).Create(ctx, squatter, metav1.CreateOptions{})
	// The CRD's rule answers before the webhook does.
	if err == nil || !strings.Contains(err.Error(), "secret-kind and secret-version are the operator's own") {
		t.Errorf("a QuarksJob setting a reserved output label: err = %v; want it refused", err)
	}
	// Only the victim's pods wrote them (the run's own pod may have uploaded before the Job
	// controller, counting the tenant's pod, ended it).
	wantData(t, e.secret("slowvic-creds"), map[string]string{"user": "victim"})
	wantData(t, e.secret("slowvic-cert-v1"), map[string]string{"crt": "victim"})
}
