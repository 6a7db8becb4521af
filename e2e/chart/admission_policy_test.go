package chart_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// Identities of the admission policy test. All of them get the same rights on Jobs and pods in the
// tenant namespace, and the tenant gets Secret rights where that matters, so whatever is refused
// there is refused by the policy, not by RBAC.
const (
	tenantNS          = "tenant"
	tenantUser        = "system:serviceaccount:" + tenantNS + ":ci-bot"
	controllerUser    = "system:serviceaccount:" + releaseNS + ":" + controllerName
	jobControllerUser = "system:serviceaccount:kube-system:job-controller"
	garbageCollector  = "system:serviceaccount:kube-system:generic-garbage-collector"
	deploymentLabel   = "quarks.cloudfoundry.org/deployment-name" // cf-operator's, not reserved
)

// The chart's ValidatingAdmissionPolicy, rendered with its defaults, on a real kube-apiserver
// (envtest): identities that may create Jobs, pods and Secrets cannot dress them up as a
// QuarksJob run or its output; the controller, the Job controller and the garbage collector can.
func TestAdmissionPolicyOnAnAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver and etcd (envtest)")
	}
	cfg := startAPIServer(t)
	ctx := t.Context()
	admin := kubernetes.NewForConfigOrDie(cfg)
	setUpTenant(t, ctx, admin)
	applyAdmissionPolicy(t, ctx, admin)

	tenant := clientAs(cfg, tenantUser)
	controller := clientAs(cfg, controllerUser)
	jobController := clientAs(cfg, jobControllerUser)
	runLabels := map[string]string{qjv1.LabelQJobName: "errand", qjv1.LabelRun: "1"}
	qjobOwner := metav1.OwnerReference{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob", Name: "errand",
		UID: "3b6f2c8e-0000-4000-8000-000000000001", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	jobsRefusal := "only the quarks-job controller (" + controllerUser + ") may create Jobs with "
	jobsReason := "; the controller creates the Jobs of QuarksJob runs itself (refused for " + tenantUser + ")"

	t.Run("a tenant's Job with a run label is refused", func(t *testing.T) {
		_, err := tenant.BatchV1().Jobs(tenantNS).Create(ctx, job("forged-run", map[string]string{qjv1.LabelRun: "7"}, nil), metav1.CreateOptions{})
		assertRefused(t, err, jobsRefusal+"label "+qjv1.LabelRun+jobsReason)
	})

	for _, owner := range []metav1.OwnerReference{
		{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob", Name: "errand", UID: "00000000-0000-4000-8000-00000000dead"},
		{APIVersion: qjv1.GroupName + "/v1", Kind: "QuarksJob", Name: "errand", UID: "00000000-0000-4000-8000-00000000beef"},
	} {
		t.Run("a tenant's Job owned by a "+owner.APIVersion+" QuarksJob is refused", func(t *testing.T) {
			j := job("forged-owner", nil, nil)
			j.OwnerReferences = []metav1.OwnerReference{owner}
			_, err := tenant.BatchV1().Jobs(tenantNS).Create(ctx, j, metav1.CreateOptions{})
			assertRefused(t, err, jobsRefusal+"an ownerReference to a QuarksJob"+jobsReason)
		})
	}

	t.Run("a tenant's Job whose pods would carry the run labels is refused", func(t *testing.T) {
		// Its own label: a Job without labels gets its pod template's.
		j := job("forged-template", map[string]string{"app": "forged"}, nil)
		j.Spec.Template.Labels = map[string]string{qjv1.LabelQJobName: "errand"}
		_, err := tenant.BatchV1().Jobs(tenantNS).Create(ctx, j, metav1.CreateOptions{})
		assertRefused(t, err, jobsRefusal+"pod template label "+qjv1.LabelQJobName+jobsReason)
	})

	t.Run("a tenant's Job with another operator's quarks label is admitted", func(t *testing.T) {
		j := job("cf-deployment", map[string]string{deploymentLabel: "cf"}, map[string]string{"quarks.cloudfoundry.org/other": "x"})
		j.Spec.Template.Labels = map[string]string{deploymentLabel: "cf"}
		if _, err := tenant.BatchV1().Jobs(tenantNS).Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	// The Job of a run, as the controller makes it (controller/internal/runs).
	run := job("errand-1", runLabels, map[string]string{qjv1.AnnotationRunTrigger: "manual", qjv1.AnnotationInputsHash: "abc"})
	run.OwnerReferences = []metav1.OwnerReference{qjobOwner}
	run.Spec.Template.Labels = runLabels
	run.Spec.Template.Annotations = map[string]string{qjv1.AnnotationOutputFiles: `{"main":["output.json"]}`}
	created := t.Run("the controller's Job of a run is admitted", func(t *testing.T) {
		var err error
		if run, err = controller.BatchV1().Jobs(tenantNS).Create(ctx, run, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if !created {
		t.FailNow() // the cases below change that Job
	}

	t.Run("a tenant may add an unrelated label to the controller's Job", func(t *testing.T) {
		_, err := tenant.BatchV1().Jobs(tenantNS).Patch(ctx, run.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"a"}}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a tenant may not change the run label of the controller's Job", func(t *testing.T) {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"2"}}}`, qjv1.LabelRun)
		_, err := tenant.BatchV1().Jobs(tenantNS).Patch(ctx, run.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		assertRefused(t, err, "only the quarks-job controller ("+controllerUser+") may change label "+qjv1.LabelRun+" of Jobs"+jobsReason)
	})

	t.Run("a tenant may not remove an annotation of the controller's Job", func(t *testing.T) {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, qjv1.AnnotationInputsHash)
		_, err := tenant.BatchV1().Jobs(tenantNS).Patch(ctx, run.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		assertRefused(t, err, "may change annotation "+qjv1.AnnotationInputsHash+" of Jobs")
	})

	t.Run("the controller may annotate its Job with the output result", func(t *testing.T) {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"{}"}}}`, qjv1.AnnotationOutputResult)
		if _, err := controller.BatchV1().Jobs(tenantNS).Patch(ctx, run.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the garbage collector may rewrite the Job's ownerReferences", func(t *testing.T) {
		gc := clientAs(cfg, garbageCollector)
		if _, err := gc.BatchV1().Jobs(tenantNS).Patch(ctx, run.Name, types.MergePatchType, []byte(`{"metadata":{"ownerReferences":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	podsRefusal := "only the Kubernetes Job controller (" + jobControllerUser + ") may create pods with annotation " + qjv1.AnnotationOutputFiles
	outputFiles := map[string]string{qjv1.AnnotationOutputFiles: `{"main":["output.json"]}`}
	t.Run("a tenant's pod with the output-files annotation is refused", func(t *testing.T) {
		_, err := tenant.CoreV1().Pods(tenantNS).Create(ctx, pod("forged-pod", nil, outputFiles), metav1.CreateOptions{})
		assertRefused(t, err, podsRefusal+"; the pods of a QuarksJob run are created from the Job the quarks-job controller made (refused for "+tenantUser+")")
	})

	t.Run("the Job controller's pod of a run is admitted", func(t *testing.T) {
		p := pod("errand-1-abcde", runLabels, outputFiles)
		if _, err := jobController.CoreV1().Pods(tenantNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a tenant may label the pod of a run but not change its run labels", func(t *testing.T) {
		if _, err := tenant.CoreV1().Pods(tenantNS).Patch(ctx, "errand-1-abcde", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"a"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"other"}}}`, qjv1.LabelQJobName)
		_, err := tenant.CoreV1().Pods(tenantNS).Patch(ctx, "errand-1-abcde", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		assertRefused(t, err, "only the Kubernetes Job controller ("+jobControllerUser+") may change label "+qjv1.LabelQJobName+" of pods")
	})

	t.Run("a tenant's pod with another operator's quarks label is admitted", func(t *testing.T) {
		if _, err := tenant.CoreV1().Pods(tenantNS).Create(ctx, pod("cf-pod", map[string]string{deploymentLabel: "cf"}, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	// A pod of the tenant's own, then dressed up as a pod of another party's Job: the Job
	// controller would count it, and the output endpoint look at it.
	jobPodsRefusal := "only the Kubernetes Job controller (" + jobControllerUser + ") may "
	jobPodsReason := "; the pods of a Job are made by the Job controller (refused for " + tenantUser + ")"
	jobUID := "7d1e0a52-0000-4000-8000-000000000042"
	jobOwner := fmt.Sprintf(`{"apiVersion":"batch/v1","kind":"Job","name":"victim-1","uid":%q,"controller":true}`, jobUID)
	t.Run("a tenant's pod with a controller reference to a Job is refused", func(t *testing.T) {
		p := pod("forged-job-pod", nil, nil)
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "victim-1", UID: types.UID(jobUID), Controller: ptr.To(true)}}
		_, err := tenant.CoreV1().Pods(tenantNS).Create(ctx, p, metav1.CreateOptions{})
		assertRefused(t, err, jobPodsRefusal+"create pods with a controller reference to Job victim-1"+jobPodsReason)
	})
	t.Run("a tenant's pod with the Job controller's labels is refused", func(t *testing.T) {
		_, err := tenant.CoreV1().Pods(tenantNS).Create(ctx, pod("forged-labels", map[string]string{batchv1.ControllerUidLabel: jobUID}, nil), metav1.CreateOptions{})
		assertRefused(t, err, jobPodsRefusal+"create pods with label "+batchv1.ControllerUidLabel+jobPodsReason)
	})
	t.Run("a tenant may not patch its plain pod into a Job", func(t *testing.T) {
		if _, err := tenant.CoreV1().Pods(tenantNS).Create(ctx, pod("plain-pod", nil, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for patch, what := range map[string]string{
			fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, batchv1.ControllerUidLabel, jobUID): "label " + batchv1.ControllerUidLabel,
			fmt.Sprintf(`{"metadata":{"labels":{%q:"victim-1"}}}`, batchv1.JobNameLabel):       "label " + batchv1.JobNameLabel,
			fmt.Sprintf(`{"metadata":{"finalizers":[%q]}}`, batchv1.JobTrackingFinalizer):      "the finalizer " + batchv1.JobTrackingFinalizer,
			`{"metadata":{"ownerReferences":[` + jobOwner + `]}}`:                              "a controller reference to Job victim-1",
		} {
			_, err := tenant.CoreV1().Pods(tenantNS).Patch(ctx, "plain-pod", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			assertRefused(t, err, jobPodsRefusal+"give pods "+what+jobPodsReason)
		}
	})
	jobPod := pod("victim-1-xyz12", map[string]string{batchv1.ControllerUidLabel: jobUID, batchv1.JobNameLabel: "victim-1"}, nil)
	jobPod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "victim-1", UID: types.UID(jobUID), Controller: ptr.To(true)}}
	jobPod.Finalizers = []string{batchv1.JobTrackingFinalizer}
	t.Run("the Job controller's pod of a Job is admitted, and a tenant may label it", func(t *testing.T) {
		if _, err := jobController.CoreV1().Pods(tenantNS).Create(ctx, jobPod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tenant.CoreV1().Pods(tenantNS).Patch(ctx, jobPod.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"a"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := tenant.CoreV1().Pods(tenantNS).Patch(ctx, jobPod.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"controller-uid":"other"}}}`), metav1.PatchOptions{})
		assertRefused(t, err, jobPodsRefusal+"give pods label controller-uid"+jobPodsReason)
		// The Job controller removes its finalizer when it has counted the pod.
		if _, err := jobController.CoreV1().Pods(tenantNS).Patch(ctx, jobPod.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	versioned := map[string]string{qjv1.LabelSecretKind: qjv1.SecretKindVersioned, qjv1.LabelSecretVersion: "3"}
	t.Run("a tenant's versioned Secret is refused, though it may write Secrets", func(t *testing.T) {
		bind(t, ctx, admin, "tenant-secrets", "secrets", tenantUser)
		if _, err := tenant.CoreV1().Secrets(tenantNS).Create(ctx, secret("plain", nil), metav1.CreateOptions{}); err != nil {
			t.Fatalf("the tenant may not write a plain Secret, so this case shows nothing: %v", err)
		}
		_, err := tenant.CoreV1().Secrets(tenantNS).Create(ctx, secret("creds-v3", versioned), metav1.CreateOptions{})
		assertRefused(t, err, "only the quarks-job controller ("+controllerUser+") may create Secrets with label "+
			qjv1.LabelSecretKind+"="+qjv1.SecretKindVersioned+" or label "+qjv1.LabelSecretVersion+"; it writes the output Secrets of QuarksJob runs")
	})

	t.Run("a tenant's Secret of another kind is admitted", func(t *testing.T) {
		if _, err := tenant.CoreV1().Secrets(tenantNS).Create(ctx, secret("other-kind", map[string]string{qjv1.LabelSecretKind: "other"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the controller's versioned Secret is admitted", func(t *testing.T) {
		s := secret("creds-v3", versioned)
		s.OwnerReferences = []metav1.OwnerReference{qjobOwner}
		if _, err := controller.CoreV1().Secrets(tenantNS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a tenant may not claim a run wrote its Secret", func(t *testing.T) {
		s := secret("forged-output", nil)
		s.Annotations = map[string]string{qjv1.AnnotationOutputRun: "2", qjv1.AnnotationOutputOf: "hello"}
		_, err := tenant.CoreV1().Secrets(tenantNS).Create(ctx, s, metav1.CreateOptions{})
		assertRefused(t, err, "only the quarks-job controller ("+controllerUser+") may create Secrets with annotation "+qjv1.AnnotationOutputRun)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"2"}}}`, qjv1.AnnotationOutputRun)
		_, err = tenant.CoreV1().Secrets(tenantNS).Patch(ctx, "plain", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		assertRefused(t, err, "only the quarks-job controller ("+controllerUser+") may change annotation "+qjv1.AnnotationOutputRun+" of Secrets")
	})

	t.Run("a tenant may not renumber the controller's versioned Secret", func(t *testing.T) {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"4"}}}`, qjv1.LabelSecretVersion)
		_, err := tenant.CoreV1().Secrets(tenantNS).Patch(ctx, "creds-v3", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		assertRefused(t, err, "only the quarks-job controller ("+controllerUser+") may change label "+qjv1.LabelSecretVersion+" of Secrets")
	})
}

// startAPIServer starts a kube-apiserver and etcd from KUBEBUILDER_ASSETS and returns an admin's
// configuration. Missing assets fail the test: a skipped policy test proves nothing.
func startAPIServer(t *testing.T) *rest.Config {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make kube` and set it to bin/kube (the Makefile does), or use -short to leave out the tests that need an API server")
	}
	for _, binary := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, binary)); err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS=%s lacks %s (run `make kube`): %v", assets, binary, err)
		}
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	return cfg
}

// setUpTenant creates the tenant namespace and a Role for Jobs and pods, bound to the tenant,
// the controller and the Job controller alike, and a Role for Secrets bound to the controller.
func setUpTenant(t *testing.T, ctx context.Context, admin kubernetes.Interface) {
	t.Helper()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller manager runs here to create it, and pods are not admitted without it.
	if _, err := admin.CoreV1().ServiceAccounts(tenantNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	verbs := []string{"create", "update", "patch", "get"}
	for _, role := range []*rbacv1.Role{
		{ObjectMeta: metav1.ObjectMeta{Name: "workloads"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: verbs},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: verbs},
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "secrets"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: verbs},
		}},
	} {
		if _, err := admin.RbacV1().Roles(tenantNS).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bind(t, ctx, admin, "workloads", "workloads", tenantUser, controllerUser, jobControllerUser, garbageCollector)
	bind(t, ctx, admin, "controller-secrets", "secrets", controllerUser)
}

func bind(t *testing.T, ctx context.Context, admin kubernetes.Interface, name, role string, users ...string) {
	t.Helper()
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
	}
	for _, u := range users {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: u})
	}
	if _, err := admin.RbacV1().RoleBindings(tenantNS).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The RBAC authorizer reads bindings from its informer: wait until it grants what was bound.
	for _, u := range users {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			review, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, accessReview(u, role), metav1.CreateOptions{})
			return err == nil && review.Status.Allowed, err
		})
		if err != nil {
			t.Fatalf("RoleBinding %s does not take effect for %s: %v", name, u, err)
		}
	}
}

// applyAdmissionPolicy creates the chart's policy and binding and waits until the API server
// enforces them: a dry-run create of a forged Job is refused.
func applyAdmissionPolicy(t *testing.T, ctx context.Context, admin kubernetes.Interface) {
	t.Helper()
	r := render(t)
	policies, bindings := r.all("ValidatingAdmissionPolicy"), r.all("ValidatingAdmissionPolicyBinding")
	if len(policies) != 1 || len(bindings) != 1 {
		t.Fatalf("the chart renders %d ValidatingAdmissionPolicies and %d bindings, want one each", len(policies), len(bindings))
	}
	policy, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx,
		policies[0].Typed.(*admissionregistrationv1.ValidatingAdmissionPolicy), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the API server does not accept the chart's ValidatingAdmissionPolicy: %v", err)
	}
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx,
		bindings[0].Typed.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding), metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API server does not accept the chart's ValidatingAdmissionPolicyBinding: %v", err)
	}

	forged := job("activation-probe", map[string]string{qjv1.LabelRun: "1"}, nil)
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, last = admin.BatchV1().Jobs(tenantNS).Create(ctx, forged, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return last != nil && strings.Contains(last.Error(), policy.Name), nil
	})
	if err != nil {
		p, _ := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, policy.Name, metav1.GetOptions{})
		t.Fatalf("the policy is not enforced (last dry run: %v); its status: %+v", last, p.Status)
	}
	// The controller manager checks the expressions against the schemas of the types the policy
	// matches and publishes warnings in status.typeChecking; no controller manager runs here, so
	// run its type checker against this API server's OpenAPI. A warning is an expression that
	// cannot work as written.
	checker := &validating.TypeChecker{
		SchemaResolver: &resolver.ClientDiscoveryResolver{Discovery: admin.Discovery()},
		RestMapper:     restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(admin.Discovery())),
	}
	for _, w := range checker.Check(policy) {
		t.Errorf("type checking warns about %s: %s", w.FieldRef, w.Warning)
	}
	// The checker resolves the matched types; else it would stay silent about everything.
	broken := policy.DeepCopy()
	broken.Spec.Validations = append(broken.Spec.Validations, admissionregistrationv1.Validation{Expression: "object.metadata.noSuchField == 'x'"})
	if warnings := checker.Check(broken); len(warnings) == 0 {
		t.Errorf("type checking does not see an undefined field: it checks nothing")
	}
}

// assertRefused checks that err is the policy's refusal and carries the message want.
func assertRefused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted; want it refused with %q", want)
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+admissionPolicyName+"'") {
		t.Fatalf("refused, but not by the policy %s: %v", admissionPolicyName, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("refusal\n  %v\nlacks\n  %s", err, want)
	}
}

func clientAs(cfg *rest.Config, user string) kubernetes.Interface {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	return kubernetes.NewForConfigOrDie(c)
}

func accessReview(user, role string) *authorizationv1.SubjectAccessReview {
	resource := &authorizationv1.ResourceAttributes{Namespace: tenantNS, Verb: "create", Group: "batch", Resource: "jobs"}
	if role == "secrets" {
		resource.Group, resource.Resource = "", "secrets"
	}
	return &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: resource}}
}

func job(name string, labels, annotations map[string]string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenantNS, Labels: labels, Annotations: annotations},
		Spec: batchv1.JobSpec{
			Suspend: ptr.To(true),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
			}},
		},
	}
}

func pod(name string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenantNS, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "main", Image: "busybox"}},
		},
	}
}

func secret(name string, labels map[string]string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenantNS, Labels: labels},
		StringData: map[string]string{"password": "s3cret"},
	}
}
