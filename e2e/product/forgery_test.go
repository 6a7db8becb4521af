//go:build e2e

package product_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// victimQJob is an errand whose container "gen" sleeps (seconds), then writes a plain and a
// versioned Secret.
const victimQJob = `
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: %[1]s
spec:
  trigger:
    strategy: manual
  output:
    outputMap:
      gen:
        creds.json:
          name: %[1]s-creds
        cert.json:
          name: %[1]s-cert
          versioned: true
  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: gen
            image: busybox
            command: ["sh", "-c", "sleep %[2]d; echo '{\"user\":\"victim\"}' > /mnt/quarks/creds.json; echo '{\"crt\":\"victim\"}' > /mnt/quarks/cert.json"]
`

// attackerScript writes the attacker's data where the victim's container writes its output.
const attackerScript = `echo '{"user":"attacker"}' > /mnt/quarks/creds.json; echo '{"crt":"attacker"}' > /mnt/quarks/cert.json`

// floodUploads is how many uploads with made-up tokens the flood sends at most, within
// floodFor.
const (
	floodUploads = 2000
	floodFor     = "15s"
)

// testForgery tries, as someone who may create Jobs and pods but has no right on Secrets or
// QuarksJobs, the ways to make the operator write Secrets for them. Each forged object is tried
// twice: as that identity, which the chart's admission policy refuses, and past the policy, as if
// it were turned off, where the controller's own checks refuse what it leads to. The victims'
// Secrets never change, and the victims keep working.
func testForgery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "forgery", nil)
	ctx := e.ctx
	e.apply("victim", []byte(fmt.Sprintf(victimQJob, "victim", 0)))
	e.apply("slow victim", []byte(fmt.Sprintf(victimQJob, "slow", 40)))
	e.patchQJob("victim", `{"spec":{"trigger":{"strategy":"now"}}}`)
	e.wantRun(e.waitRunFinished("victim", 1), 1, qjv1.RunSucceeded)
	victim, err := e.qjob("victim")
	if err != nil {
		t.Fatal(err)
	}
	before := e.resourceVersions("victim-creds", "victim-cert-v1")
	bot := e.restrictedClient("ci-bot")
	pastPolicy := pastPolicyClient(t)

	// 1. A Job that claims the victim as controller, with the run labels and the output-files
	// annotation copied from a real run, running the attacker's code; 2. the same under the name
	// the victim's next run takes.
	for _, forged := range []*batchv1.Job{forgedRunJob(victim, "victim-99", 99), forgedRunJob(victim, "victim-2", 2)} {
		_, err := bot.BatchV1().Jobs(e.namespace).Create(ctx, forged, metav1.CreateOptions{})
		wantRefusedByPolicy(t, "forged Job "+forged.Name, err)
		if _, err := pastPolicy.BatchV1().Jobs(e.namespace).Create(ctx, forged, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Their pods ran the attacker's code and uploaded with genuine pod-bound tokens.
	for _, job := range []string{"victim-99", "victim-2"} {
		pod := e.waitJobPodFinished(job)
		e.wantPersisterLog(pod, "is not the Job of the current run")
	}
	if events, ok := e.waitEvent("victim", "ForeignJob", runTimeout); !ok {
		t.Errorf("no ForeignJob Event on the victim; events: %v", events)
	}
	e.wantUnchanged(before)
	e.noSecret("victim-cert-v2")

	// The victim's next run meets the forged Job under its name, and run 3 a plain Job the
	// restricted identity may create (no claims: the policy lets it through): each run takes a
	// name the API server draws and succeeds, and the Jobs under the taken names are left alone.
	if _, err := bot.BatchV1().Jobs(e.namespace).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "victim-3"},
		Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: attackerPodSpec()}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a plain Job under the name of run 3: %v", err)
	}
	for n := int64(2); n <= 3; n++ {
		e.patchQJob("victim", `{"spec":{"trigger":{"strategy":"now"}}}`)
		q := e.waitRunFinished("victim", n)
		e.wantRun(q, n, qjv1.RunSucceeded)
		if name, prefix := q.Status.LastRun.JobName, fmt.Sprintf("victim-%d-", n); !strings.HasPrefix(name, prefix) {
			t.Errorf("run %d's Job is %q; want a name drawn after %s", n, name, prefix)
		}
	}
	before = e.resourceVersions("victim-creds", "victim-cert-v1")
	for _, job := range []string{"victim-99", "victim-2", "victim-3"} {
		if _, err := suite.kube.BatchV1().Jobs(e.namespace).Get(ctx, job, metav1.GetOptions{}); err != nil {
			t.Errorf("the forged Job %s was not left alone: %v", job, err)
		}
	}

	// 3. A pod that claims the slow victim's running Job as controller, with the Job
	// controller's labels, the run labels and the output-files annotation: the webhook injects
	// the persister and its audience token, and it runs the attacker's code.
	e.patchQJob("slow", `{"spec":{"trigger":{"strategy":"now"}}}`)
	slow := e.waitQJob("slow", "run 1 running", func(q *qjv1.QuarksJob) (bool, string) {
		if r := q.Status.LastRun; r == nil || r.Result != qjv1.RunRunning || r.JobUID == "" {
			return false, "run 1 not recorded as running: " + runString(r)
		}
		return true, ""
	})
	forgedPod := forgedRunPod(slow, "slow-1-forged")
	_, err = bot.CoreV1().Pods(e.namespace).Create(ctx, forgedPod, metav1.CreateOptions{})
	wantRefusedByPolicy(t, "forged pod of the running Job", err)
	if _, err := pastPolicy.CoreV1().Pods(e.namespace).Create(ctx, forgedPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Job controller counts a pod that names the Job as controller and carries its label: one
	// more than the Job's parallelism, it may delete it at once. Either way the pod's upload, if
	// it made one, was refused, and nothing was written (checked below).
	if pod := e.waitPodFinishedOrGone(forgedPod.Name); pod != nil && pod.DeletionTimestamp.IsZero() {
		e.wantPersisterLog(pod, "is not a pod of run 1 of QuarksJob slow")
	} else {
		t.Logf("the Job controller deleted the forged pod %s", forgedPod.Name)
	}

	// 4. A template that fakes a result: the reserved annotations are dropped, and a run whose
	// container wrote nothing fails.
	e.apply("faker", []byte(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: faker
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      gen:
        creds.json:
          name: faker-creds
  template:
    metadata:
      annotations:
        quarks.cloudfoundry.org/output-result: '{"persisted":true}'
    spec:
      backoffLimit: 0
      template:
        metadata:
          annotations:
            quarks.cloudfoundry.org/output-result: '{"persisted":true}'
        spec:
          restartPolicy: Never
          containers:
          - name: gen
            image: busybox
            command: ["true"]
`))
	q := e.waitRunFinished("faker", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	if !strings.Contains(q.Status.LastRun.Message, `output file "creds.json" of container "gen" was not written`) {
		t.Errorf("faker run 1 message: %q", q.Status.LastRun.Message)
	}

	// 5. Another QuarksJob declaring the victim's versioned family.
	e.apply("intruder", []byte(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: intruder
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      gen:
        cert.json:
          name: victim-cert
          versioned: true
  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: gen
            image: busybox
            command: ["sh", "-c", "echo '{\"crt\":\"intruder\"}' > /mnt/quarks/cert.json"]
`))
	q = e.waitRunFinished("intruder", 1)
	e.wantRun(q, 1, qjv1.RunFailed)
	if !strings.Contains(q.Status.LastRun.Message, `versioned Secret "victim-cert" in namespace "`+e.namespace+`" belongs to QuarksJob "victim"`) {
		t.Errorf("intruder run 1 message: %q", q.Status.LastRun.Message)
	}

	// 6. A flood of uploads with made-up tokens, from a pod: every one refused, the controller's
	// memory bounded.
	// Their signatures are checked against the issuer's keys, which every
	// service account may read: none costs a TokenReview.
	rssBefore, checksBefore := controllerRSS(t, ctx), tokenChecks(t, ctx)
	// Once the pod's address has spent its refusals, its requests are held a second before
	// their 429 (the tarpit): the flood slows to the pace of its connections.
	out := e.runProbe("flood", "https://quarks-job-output."+releaseNS+".svc"+upload.Path, strconv.Itoa(floodUploads), floodFor)
	rssAfter, checksAfter := controllerRSS(t, ctx), tokenChecks(t, ctx)
	t.Logf("figure: %s", strings.TrimSpace(out))
	t.Logf("figure: controller RSS %d MiB before the flood, %d MiB after", rssBefore>>20, rssAfter>>20)
	var sent int
	if _, err := fmt.Sscanf(out, "flood: %d requests", &sent); err != nil || sent == 0 || strings.Contains(out, " 200=") {
		t.Errorf("flood: %s; want uploads sent, every one refused", out)
	}
	unreviewed := int(checksAfter["not-issued"] - checksBefore["not-issued"])
	t.Logf("figure: token checks during the flood: %d refused or throttled without a review, of %d; %v reviews charged to addresses", unreviewed, sent, checksAfter["reviewed-address"]-checksBefore["reviewed-address"])
	if unreviewed < sent {
		t.Errorf("only %d of the flood's %d made-up tokens were refused without a TokenReview", unreviewed, sent)
	}
	if checksAfter["reviewed-address"] != 0 {
		t.Errorf("%v reviews were charged to source addresses: the controller could not read the issuer's keys", checksAfter["reviewed-address"])
	}
	if grown := rssAfter - rssBefore; grown > 64<<20 {
		t.Errorf("the controller's memory grew by %d MiB under the flood, want at most 64 MiB", grown>>20)
	}

	// The victims keep working, and nothing of theirs changed.
	e.wantUnchanged(before)
	q = e.waitRunFinished("slow", 1)
	if r := q.Status.LastRun; r.Result == qjv1.RunFailed && !strings.Contains(r.Message, "not persisted") {
		t.Errorf("slow run 1 failed for another reason than the forged pod ending its Job: %q", r.Message)
	}
	e.patchQJob("victim", `{"spec":{"trigger":{"strategy":"now"}}}`)
	e.wantRun(e.waitRunFinished("victim", 4), 4, qjv1.RunSucceeded)
	wantData(t, e.secret("victim-creds"), map[string]string{"user": "victim"})
	wantData(t, e.secret("victim-cert-v1"), map[string]string{"crt": "victim"})
	e.noSecret("victim-cert-v2") // the same content is not a new version
	e.patchQJob("slow", `{"spec":{"trigger":{"strategy":"now"}}}`)
	e.wantRun(e.waitRunFinished("slow", 2), 2, qjv1.RunSucceeded)
	wantData(t, e.secret("slow-creds"), map[string]string{"user": "victim"})
}

// restrictedClient is a client with only a service account's token (no client certificate, no
// impersonation): the service account may create, read and delete Jobs and pods in the test's
// namespace, and nothing else.
func (e *tenv) restrictedClient(name string) kubernetes.Interface {
	e.t.Helper()
	cfg := e.serviceAccount(name, []rbacv1.PolicyRule{
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	// The identity really is that restricted: it may not read Secrets.
	if _, err := client.CoreV1().Secrets(e.namespace).List(e.ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		e.t.Fatalf("%s may list Secrets (err %v); the test needs an identity without Secret rights", name, err)
	}
	return client
}

// serviceAccount creates a service account with a Role of rules in the test's namespace and
// returns a configuration that acts as it with its token alone.
func (e *tenv) serviceAccount(name string, rules []rbacv1.PolicyRule) *rest.Config {
	e.t.Helper()
	ctx := e.ctx
	core, rbac := suite.kube.CoreV1(), suite.kube.RbacV1()
	if _, err := core.ServiceAccounts(e.namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	if _, err := rbac.Roles(e.namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: e.namespace}}}
	if _, err := rbac.RoleBindings(e.namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	token, err := core.ServiceAccounts(e.namespace).CreateToken(ctx, name, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return &rest.Config{Host: suite.config.Host, BearerToken: token.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: suite.config.CAData, CAFile: suite.config.CAFile, ServerName: suite.config.ServerName}}
}

// pastPolicyClient acts as an identity the admission policy lets through (the garbage
// collector's, which rewrites ownerReferences), with an administrator's rights: what a forger
// could do if the policy were turned off.
func pastPolicyClient(t testing.TB) kubernetes.Interface {
	return impersonating(t, "system:serviceaccount:kube-system:generic-garbage-collector")
}

// impersonating is a client acting as user, with an administrator's rights.
func impersonating(t testing.TB, user string) kubernetes.Interface {
	cfg := rest.CopyConfig(suite.config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters", "system:authenticated"}}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// wantRefusedByPolicy fails unless err is the admission policy's refusal.
func wantRefusedByPolicy(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
		t.Errorf("%s: err = %v; want the admission policy's refusal", what, err)
		return
	}
	t.Logf("%s: refused: %v", what, err)
}

// forgedRunJob is a Job dressed as run n of qjob, running the attacker's script.
func forgedRunJob(qjob *qjv1.QuarksJob, name string, n int) *batchv1.Job {
	runLabels := map[string]string{qjv1.LabelQJobName: qjob.Name, qjv1.LabelRun: strconv.Itoa(n)}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: runLabels,
			Annotations:     map[string]string{qjv1.AnnotationRunTrigger: string(qjv1.RunTriggerNow), qjv1.AnnotationOutputSpec: `{"outputMap":{"gen":{"creds.json":{"name":"victim-creds"}}}}`},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob", Name: qjob.Name, UID: qjob.UID, Controller: ptr.To(true)}}},
		Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: runLabels, Annotations: map[string]string{qjv1.AnnotationOutputFiles: `{"gen":["cert.json","creds.json"]}`}},
			Spec:       attackerPodSpec(),
		}},
	}
}

// forgedRunPod is a pod dressed as one the Job controller made for qjob's running run.
func forgedRunPod(qjob *qjv1.QuarksJob, name string) *corev1.Pod {
	run := qjob.Status.LastRun
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{qjv1.LabelQJobName: qjob.Name, qjv1.LabelRun: strconv.FormatInt(run.Number, 10),
				batchv1.ControllerUidLabel: string(run.JobUID), batchv1.JobNameLabel: run.JobName},
			Annotations:     map[string]string{qjv1.AnnotationOutputFiles: `{"gen":["cert.json","creds.json"]}`},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: run.JobName, UID: run.JobUID, Controller: ptr.To(true)}}},
		Spec: attackerPodSpec(),
	}
}

func attackerPodSpec() corev1.PodSpec {
	return corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "gen", Image: "busybox", Command: []string{"sh", "-c", attackerScript}}}}
}

// resourceVersions records the Secrets' resourceVersions.
func (e *tenv) resourceVersions(names ...string) map[string]string {
	e.t.Helper()
	versions := map[string]string{}
	for _, name := range names {
		versions[name] = e.secret(name).ResourceVersion
	}
	return versions
}

// wantUnchanged fails when a recorded Secret changed.
func (e *tenv) wantUnchanged(before map[string]string) {
	e.t.Helper()
	for name, version := range before {
		if got := e.secret(name).ResourceVersion; got != version {
			e.t.Errorf("Secret %s changed: resourceVersion %s, was %s", name, got, version)
		}
	}
}

// waitJobPodFinished waits until a pod of the Job has finished and returns it.
func (e *tenv) waitJobPodFinished(job string) *corev1.Pod {
	e.t.Helper()
	var finished *corev1.Pod
	ctx, cancel := context.WithTimeout(e.ctx, runTimeout)
	defer cancel()
	err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		pods, err := suite.kube.CoreV1().Pods(e.namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
		if err != nil {
			return false, err.Error()
		}
		for i, p := range pods.Items {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				finished = &pods.Items[i]
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d pods, none finished", len(pods.Items))
	})
	if err != nil {
		e.t.Fatalf("Job %s: %v", job, err)
	}
	return finished
}

// waitPodFinishedOrGone waits until the pod has finished (and returns it) or is gone (nil).
func (e *tenv) waitPodFinishedOrGone(name string) *corev1.Pod {
	e.t.Helper()
	var pod *corev1.Pod
	ctx, cancel := context.WithTimeout(e.ctx, runTimeout)
	defer cancel()
	err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		var err error
		pod, err = suite.kube.CoreV1().Pods(e.namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			pod = nil
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed, string(pod.Status.Phase)
	})
	if err != nil {
		e.t.Fatalf("pod %s: %v", name, err)
	}
	return pod
}

// wantPersisterLog fails unless the pod's persister logged the refusal it got.
func (e *tenv) wantPersisterLog(pod *corev1.Pod, want string) {
	e.t.Helper()
	wantPersister(e.t, pod)
	raw, err := suite.kube.CoreV1().Pods(e.namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: upload.PersisterContainerName}).DoRaw(e.ctx)
	if err != nil {
		e.t.Fatalf("logs of %s: %v", pod.Name, err)
	}
	if !strings.Contains(string(raw), want) {
		e.t.Errorf("the persister of %s did not log %q:\n%s", pod.Name, want, raw)
	}
}

// runProbe runs the e2e probe image with args as a plain Job and returns its log.
func (e *tenv) runProbe(args ...string) string {
	e.t.Helper()
	job, err := suite.kube.BatchV1().Jobs(e.namespace).Create(e.ctx, probeJob(probeImage(e.t), args...), metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	pod := e.waitJobPodFinished(job.Name)
	raw, err := suite.kube.CoreV1().Pods(e.namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(e.ctx)
	if err != nil || pod.Status.Phase != corev1.PodSucceeded {
		e.t.Fatalf("probe %v: phase %s, %v:\n%s", args, pod.Status.Phase, err, raw)
	}
	return string(raw)
}

// probeJob is a plain Job running the e2e probe image with args.
func probeJob(image string, args ...string) *batchv1.Job {
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-" + args[0] + "-"},
		Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "probe", Image: image, Args: args,
				ImagePullPolicy: corev1.PullPolicy(env("E2E_IMAGE_PULL_POLICY", string(corev1.PullIfNotPresent)))}},
		}}}}
}

// probeImage is the e2e probe's image, which the Makefile names.
func probeImage(t testing.TB) string {
	t.Helper()
	image := os.Getenv("E2E_PROBE_IMAGE")
	if image == "" {
		t.Fatal("E2E_PROBE_IMAGE is not set (the Makefile sets it)")
	}
	return image
}

// controllerRSS reads the controller's resident memory from its metrics.
func controllerRSS(t testing.TB, ctx context.Context) int64 {
	t.Helper()
	rss, ok := metricsOf(t, ctx, controllerDeployment)["process_resident_memory_bytes"]
	if !ok {
		t.Fatal("the controller's metrics have no process_resident_memory_bytes")
	}
	return int64(rss)
}

// tokenChecks reads the controller's count of upload tokens checked, by outcome.
func tokenChecks(t testing.TB, ctx context.Context) map[string]float64 {
	t.Helper()
	checks := map[string]float64{}
	for series, v := range metricsOf(t, ctx, controllerDeployment) {
		if outcome, ok := strings.CutPrefix(series, `quarks_job_output_token_checks_total{outcome="`); ok {
			checks[strings.TrimSuffix(outcome, `"}`)] = v
		}
	}
	return checks
}

// metricsOf reads the metrics of a component (its Deployment's name: the controller or the
// webhook), series → value, through the API server's service proxy (one replica of each runs in
// the suite's installation).
func metricsOf(t testing.TB, ctx context.Context, component string) map[string]float64 {
	t.Helper()
	series, err := scrape(ctx, component)
	if err != nil {
		t.Fatalf("%s metrics: %v", component, err)
	}
	return series
}

// scrape reads the metrics of a component, series → value.
func scrape(ctx context.Context, component string) (map[string]float64, error) {
	raw, err := suite.kube.CoreV1().Services(releaseNS).ProxyGet("http", component+"-metrics", "metrics", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	series := map[string]float64{}
	scanner := bufio.NewScanner(strings.NewReader(string(raw)))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			series[line[:i]] = v
		}
	}
	return series, nil
}
