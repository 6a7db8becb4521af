package outputendpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint/uploadtest"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

func fullSpec() *qjv1.Output {
	return &qjv1.Output{
		DeletePolicy: qjv1.OutputDelete,
		SecretLabels: map[string]string{"team": "storage"},
		OutputMap: qjv1.OutputMap{
			"gen": {
				"creds.json": {Name: "creds", AdditionalSecretLabels: map[string]string{"file": "creds"}, AdditionalSecretAnnotations: map[string]string{"note": "generated"}},
				"cert.json":  {Name: "cert", Versioned: true},
			},
			"fan": {"many.json": {Name: "many", PersistenceMethod: qjv1.PersistFanOut}},
		},
	}
}

var goodOutput = map[string]map[string]string{
	"gen": {"creds.json": `{"user":"admin","password":"s3cret"}`, "cert.json": `{"crt":"A"}`},
	"fan": {"many.json": `{"db":"{\"user\":\"d\"}","cache":"{\"url\":\"c\"}"}`},
}

func TestUploadWritesSecrets(t *testing.T) {
	ns := newNamespace(t)
	r := newRun(t, ns, "gen", fullSpec(), "gen", "fan")
	exit(t, r.pod, map[string]int32{"gen": 0, "fan": 0})

	status, answer := post(t, token(t, r.pod, upload.Audience), files(goodOutput))
	if status != http.StatusOK || len(answer.Problems) != 0 {
		t.Fatalf("status %d, answer %+v", status, answer)
	}

	creds := secret(t, ns, "creds")
	if string(creds.Data["password"]) != "s3cret" || creds.Labels["team"] != "storage" || creds.Labels["file"] != "creds" ||
		creds.Labels[qjv1.LabelPersistentSecretContainer] != "gen" || creds.Annotations["note"] != "generated" {
		t.Errorf("creds: data %v labels %v annotations %v", creds.Data, creds.Labels, creds.Annotations)
	}
	if ref := metav1.GetControllerOf(creds); ref == nil || ref.UID != r.qjob.UID || ref.Kind != "QuarksJob" {
		t.Errorf("creds must be controlled by the QuarksJob: %v", creds.OwnerReferences)
	}
	cert := secret(t, ns, "cert-v1")
	if cert.Immutable == nil || !*cert.Immutable || cert.Labels[qjv1.LabelSecretKind] != qjv1.SecretKindVersioned ||
		cert.Labels[qjv1.LabelSecretVersion] != "1" || cert.Annotations[qjv1.AnnotationSourceDescription] == "" || string(cert.Data["crt"]) != "A" {
		t.Errorf("cert-v1: immutable %v labels %v annotations %v data %v", cert.Immutable, cert.Labels, cert.Annotations, cert.Data)
	}
	if ref := metav1.GetControllerOf(cert); ref == nil || ref.UID != r.qjob.UID {
		t.Errorf("cert-v1 must be controlled by the QuarksJob: %v", cert.OwnerReferences)
	}
	if s := secret(t, ns, "many-db"); string(s.Data["user"]) != "d" || s.Labels[qjv1.LabelPersistentSecretContainer] != "fan" {
		t.Errorf("many-db: %v %v", s.Data, s.Labels)
	}
	if s := secret(t, ns, "many-cache"); string(s.Data["url"]) != "c" {
		t.Errorf("many-cache: %v", s.Data)
	}

	res := result(t, r.job)
	if res == nil || !res.Persisted || res.Pod != r.pod.Name || len(res.Secrets) != 4 {
		t.Fatalf("result on the Job: %+v", res)
	}
	if !slices.ContainsFunc(res.Secrets, func(s qjv1.OutputSecret) bool {
		return s.Name == "cert-v1" && s.Version == 1 && s.Container == "gen" && s.File == "cert.json"
	}) {
		t.Errorf("result must list cert-v1 with its version: %+v", res.Secrets)
	}
	expectEvent(t, r.qjob, "OutputPersisted", "persisted output of pod "+r.pod.Name)

	// The persister retries: the same upload again changes nothing.
	status, _ = post(t, token(t, r.pod, upload.Audience), files(goodOutput))
	if status != http.StatusOK {
		t.Fatalf("repeated upload: status %d", status)
	}
	if names := secretNamesIn(t, ns); slices.Contains(names, "cert-v2") {
		t.Fatalf("an identical upload must not create a new version: %v", names)
	}
	if again := result(t, r.job); !again.Persisted || len(again.Secrets) != 4 {
		t.Fatalf("result after the repeated upload: %+v", again)
	}

	// The next run, with new content: plain Secrets are updated, a new version appears.
	r2 := addRun(t, r.qjob, 2, fullSpec(), "gen", "fan")
	exit(t, r2.pod, map[string]int32{"gen": 0, "fan": 0})
	next := files(goodOutput)
	next.Containers = slices.DeleteFunc(next.Containers, func(c upload.Container) bool { return c.Name == "gen" })
	next.Containers = append(next.Containers, upload.Container{Name: "gen", Files: []upload.File{
		{Name: "creds.json", Content: []byte(`{"user":"admin","password":"rotated"}`)},
		{Name: "cert.json", Content: []byte(`{"crt":"B"}`)},
	}})
	if status, answer := post(t, token(t, r2.pod, upload.Audience), next); status != http.StatusOK {
		t.Fatalf("second run: status %d %+v", status, answer)
	}
	if s := secret(t, ns, "creds"); string(s.Data["password"]) != "rotated" {
		t.Errorf("creds not updated: %v", s.Data)
	}
	if s := secret(t, ns, "cert-v2"); string(s.Data["crt"]) != "B" || s.Labels[qjv1.LabelSecretVersion] != "2" {
		t.Errorf("cert-v2: %v %v", s.Data, s.Labels)
	}
	if s := secret(t, ns, "cert-v1"); string(s.Data["crt"]) != "A" {
		t.Errorf("cert-v1 must be kept unchanged: %v", s.Data)
	}
}

func TestUploadRefused(t *testing.T) {
	ns := newNamespace(t)
	r := newRun(t, ns, "refused", fullSpec(), "gen", "fan")
	exit(t, r.pod, map[string]int32{"gen": 0, "fan": 0})
	stray := newPod(t, ns, "not-a-run", nil, "gen", "fan") // not owned by any Job
	exit(t, stray, map[string]int32{"gen": 0, "fan": 0})

	plainJob := newPod(t, ns, "orphan-job-pod", controllerRef("batch/v1", "Job", r.job.Name, "0000-not-the-job"), "gen")

	// Forgeries by someone who may create Jobs and pods but not Secrets.
	forgedJob := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "refused-99", Namespace: ns,
			Labels:          map[string]string{qjv1.LabelQJobName: r.qjob.Name, qjv1.LabelRun: "99"},
			OwnerReferences: []metav1.OwnerReference{*controllerRef(qjv1.GroupVersion.String(), "QuarksJob", r.qjob.Name, r.qjob.UID)}},
		Spec: batchv1.JobSpec{Template: r.qjob.Spec.Template.Spec.Template},
	}
	must(t, k8s.Create(context.Background(), forgedJob))
	forgedJobPod := newPod(t, ns, "forged-job-pod", controllerRef("batch/v1", "Job", forgedJob.Name, forgedJob.UID), "gen", "fan")
	exit(t, forgedJobPod, map[string]int32{"gen": 0, "fan": 0})
	forgedPod := func(name string, change func(*corev1.Pod)) *corev1.Pod {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{batchv1.ControllerUidLabel: string(r.job.UID)},
				OwnerReferences: []metav1.OwnerReference{*controllerRef("batch/v1", "Job", r.job.Name, r.job.UID)}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: uploadtest.ServiceAccount,
				InitContainers: []corev1.Container{{Name: upload.PersisterContainerName, Image: testPersisterImage, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
				Containers:     []corev1.Container{{Name: "gen", Image: "busybox"}, {Name: "fan", Image: "busybox"}}},
		}
		change(pod)
		must(t, k8s.Create(context.Background(), pod))
		exit(t, pod, map[string]int32{"gen": 0, "fan": 0})
		return pod
	}
	otherCode := forgedPod("forged-other-code", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "attacker/gen" })
	otherUploader := forgedPod("forged-uploader", func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "attacker/persister" })
	unlabeled := forgedPod("forged-unlabeled", func(p *corev1.Pod) { p.Labels = nil })
	ownOutput := forgedPod("forged-own-output", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: upload.OutputVolumeName("gen"), VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "attacker-output"}}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: upload.OutputVolumeName("gen"), MountPath: upload.OutputRoot}}
	})
	// A pod that ran the attacker's image, then had its spec's image set
	// back to the template's: the kubelet reports the image that ran.
	imageChangedBack := forgedPod("forged-image-changed-back", func(*corev1.Pod) {})
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &corev1.Pod{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(imageChangedBack), fresh); err != nil {
			return err
		}
		fresh.Status.ContainerStatuses[0].Image = "docker.io/attacker/gen:latest"
		return k8s.Status().Update(context.Background(), fresh)
	}))
	boundToSecret := func() string {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "anchor", Namespace: ns}}
		must(t, k8s.Create(context.Background(), s))
		tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), uploadtest.ServiceAccount, tokenRequestFor("Secret", s.Name, string(s.UID)), metav1.CreateOptions{})
		must(t, err)
		return tr.Status.Token
	}()

	tests := []struct {
		name   string
		bearer string
		status int
		reason string
	}{
		{"no token", "", http.StatusUnauthorized, "bearer token"},
		{"garbage token", "not-a-token", http.StatusUnauthorized, "not a service-account token"},
		{"made-up token", "a.b.c", http.StatusUnauthorized, "token not accepted"},
		{"forged Job with the QuarksJob as controller", token(t, forgedJobPod, upload.Audience), http.StatusConflict, "is not the Job of the current run 1"},
		{"forged pod of the run's Job running other code", token(t, otherCode, upload.Audience), http.StatusForbidden, `container "gen" names image "attacker/gen", the Job's template "busybox"`},
		{"forged pod of the run's Job with output from a ConfigMap", token(t, ownOutput, upload.Audience), http.StatusForbidden, `output volume "quarks-job-output-gen" is not an empty directory`},
		{"forged pod whose image was set back after it ran", token(t, imageChangedBack, upload.Audience), http.StatusForbidden, `container "gen" ran image "docker.io/attacker/gen:latest"`},
		{"forged pod of the run's Job with another uploader", token(t, otherUploader, upload.Audience), http.StatusForbidden, `persister runs image "attacker/persister"`},
		{"forged pod of the run's Job without the Job controller's label", token(t, unlabeled, upload.Audience), http.StatusForbidden, "not the Job's UID"},
		{"another audience", token(t, r.pod, "another-audience"), http.StatusUnauthorized, "token not accepted"},
		{"expired token", resign(t, token(t, r.pod, upload.Audience), time.Now().Add(-time.Hour)), http.StatusUnauthorized, "expired"},
		// The control for the one above: the same re-signing with a future
		// expiry passes authentication (and is refused later, for the pod).
		{"re-signed valid token", resign(t, token(t, stray, upload.Audience), time.Now().Add(time.Hour)), http.StatusForbidden, "is not controlled by a Job"},
		{"token for a pod that is not a run", token(t, stray, upload.Audience), http.StatusForbidden, "is not controlled by a Job"},
		{"token for a pod whose Job UID does not match", token(t, plainJob, upload.Audience), http.StatusForbidden, "is not the one the pod belongs to"},
		{"token bound to a Secret, not a pod", boundToSecret, http.StatusForbidden, "not bound to a pod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, answer := post(t, tt.bearer, files(goodOutput))
			if status != tt.status || !strings.Contains(strings.Join(answer.Problems, " "), tt.reason) {
				t.Fatalf("status %d %+v; want %d mentioning %q", status, answer, tt.status, tt.reason)
			}
		})
	}
	if names := secretNamesIn(t, ns); slices.ContainsFunc(names, func(n string) bool { return n != "anchor" }) {
		t.Fatalf("a refused upload wrote Secrets: %v", names)
	}
	if res := result(t, r.job); res != nil {
		t.Fatalf("a refused upload recorded a result: %+v", res)
	}

	// The deleted pod's token is no longer valid.
	tok := token(t, r.pod, upload.Audience)
	must(t, k8s.Delete(context.Background(), r.pod, client.GracePeriodSeconds(0)))
	testenv.Eventually(t, 10*time.Second, "the deleted pod's token refused", func() error {
		if status, answer := post(t, tok, files(goodOutput)); status == http.StatusOK {
			return errors.New("an upload with the token of a deleted pod was accepted: " + strings.Join(answer.Problems, "; "))
		}
		return nil
	})
}

func TestUndeclaredFileWritesNothing(t *testing.T) {
	ns := newNamespace(t)
	spec := &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "creds"}}}}
	r := newRun(t, ns, "undeclared", spec, "gen", "other")
	exit(t, r.pod, map[string]int32{"gen": 0, "other": 0})

	status, answer := post(t, token(t, r.pod, upload.Audience), files(map[string]map[string]string{
		"gen":   {"creds.json": `{"a":"b"}`, "extra.json": `{"x":"y"}`},
		"other": {"creds.json": `{"x":"y"}`},
	}))
	if status != http.StatusOK {
		t.Fatalf("status %d %+v", status, answer)
	}
	names := secretNamesIn(t, ns)
	if !slices.Equal(names, []string{"creds"}) {
		t.Fatalf("only the declared file may be written; Secrets: %v", names)
	}
	if s := secret(t, ns, "creds"); string(s.Data["a"]) != "b" {
		t.Fatalf("creds holds %v: an undeclared container's file of the same name must not overwrite it", s.Data)
	}
	res := result(t, r.job)
	joined := strings.Join(res.Problems, "\n")
	if !res.Persisted || !strings.Contains(joined, `ignored output file "extra.json" of container "gen"`) ||
		!strings.Contains(joined, `ignored output file "creds.json" of container "other"`) {
		t.Fatalf("result: %+v", res)
	}
	expectEvent(t, r.qjob, "UndeclaredOutput", `ignored output file "extra.json"`)

	// A Job without an output spec: nothing is declared, nothing is written.
	r2 := addRun(t, r.qjob, 2, nil, "gen")
	exit(t, r2.pod, map[string]int32{"gen": 0})
	if status, _ := post(t, token(t, r2.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"changed"}`}})); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if s := secret(t, ns, "creds"); string(s.Data["a"]) != "b" {
		t.Fatalf("a run without output spec overwrote creds: %v", s.Data)
	}
}

func TestUploadProblems(t *testing.T) {
	ns := newNamespace(t)
	spec := &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {
		"a.json": {Name: "a"}, "b.json": {Name: "b"}, "c.json": {Name: "c"}, "d.json": {Name: "d"}, "e.json": {Name: "e"}, "ok.json": {Name: "ok"},
	}}}
	r := newRun(t, ns, "problems", spec, "gen")
	exit(t, r.pod, map[string]int32{"gen": 0})

	req := files(map[string]map[string]string{"gen": {
		"a.json":  `{"user":"x"`,
		"b.json":  `{"port":8080}`,
		"c.json":  `{"db":{"user":"x"}}`,
		"d.json":  `{"big":"` + strings.Repeat("x", upload.MaxFileBytes) + `"}`,
		"ok.json": `{"fine":"yes"}`,
	}})
	req.Containers[0].Missing = []string{"e.json"}
	status, answer := post(t, token(t, r.pod, upload.Audience), req)
	if status != http.StatusOK {
		t.Fatalf("status %d %+v", status, answer)
	}
	res := result(t, r.job)
	if res.Persisted {
		t.Fatalf("a run with invalid declared output must not be persisted: %+v", res)
	}
	joined := strings.Join(res.Problems, "\n")
	for _, want := range []string{
		`output file "a.json" of container "gen" is not valid JSON`,
		`output file "b.json" of container "gen": value of key "port" is a number; only strings are allowed`,
		`output file "c.json" of container "gen": value of key "db" is a nested object`,
		`output file "d.json" of container "gen" is 1048586 bytes; an output file may hold at most 1048576 bytes`,
		`output file "e.json" of container "gen" was not written`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems do not mention %q:\n%s", want, joined)
		}
	}
	// Valid output is never lost because another file is bad.
	if s := secret(t, ns, "ok"); string(s.Data["fine"]) != "yes" {
		t.Errorf("ok: %v", s.Data)
	}
	if names := secretNamesIn(t, ns); !slices.Equal(names, []string{"ok"}) {
		t.Errorf("Secrets: %v", names)
	}
	expectEvent(t, r.qjob, "InvalidOutput", `output file "b.json" of container "gen": value of key "port" is a number`)
	expectEvent(t, r.qjob, "InvalidOutput", `output file "d.json" of container "gen" is 1048586 bytes`)
	expectEvent(t, r.qjob, "OutputMissing", `output file "e.json" of container "gen" was not written`)
}

func TestSecretNotOwnedIsNotOverwritten(t *testing.T) {
	ns := newNamespace(t)
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, Data: map[string][]byte{"mine": []byte("keep")}}
	must(t, k8s.Create(context.Background(), foreign))
	r := newRun(t, ns, "thief", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "creds"}}}}, "gen")
	exit(t, r.pod, map[string]int32{"gen": 0})

	status, _ := post(t, token(t, r.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"mine":"stolen"}`}}))
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if s := secret(t, ns, "creds"); string(s.Data["mine"]) != "keep" || len(s.OwnerReferences) != 0 {
		t.Fatalf("a Secret the QuarksJob does not own was overwritten: %v %v", s.Data, s.OwnerReferences)
	}
	res := result(t, r.job)
	if res.Persisted || !strings.Contains(strings.Join(res.Problems, "\n"), `Secret "creds" exists in namespace "`+ns+`" and is not this QuarksJob's output (it has no controller and no label quarks.cloudfoundry.org/container-name=gen); it was not overwritten. Delete it to let the next run write it; or, to keep it until then, have it labeled quarks.cloudfoundry.org/container-name=gen`) {
		t.Fatalf("result: %+v", res)
	}
	expectEvent(t, r.qjob, "SecretNotOwned", `output file "creds.json" of container "gen": Secret "creds" exists`)
}

func TestFailedContainers(t *testing.T) {
	ns := newNamespace(t)
	out := map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}}

	off := newRun(t, ns, "no-wof", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "off"}}}}, "gen")
	exit(t, off.pod, map[string]int32{"gen": 2})
	if status, _ := post(t, token(t, off.pod, upload.Audience), files(out)); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	res := result(t, off.job)
	if !res.Persisted || len(res.Secrets) != 0 || !strings.Contains(strings.Join(res.Problems, ""), `container "gen" exited with code 2; its output file "creds.json" is not persisted because output.writeOnFailure is off`) {
		t.Fatalf("without writeOnFailure, a failed container's output is not expected: %+v", res)
	}

	on := newRun(t, ns, "wof", &qjv1.Output{WriteOnFailure: true, OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "on"}}}}, "gen")
	exit(t, on.pod, map[string]int32{"gen": 7})
	if status, _ := post(t, token(t, on.pod, upload.Audience), files(out)); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if s := secret(t, ns, "on"); string(s.Data["a"]) != "b" {
		t.Fatalf("writeOnFailure: any non-zero exit code persists output: %v", s.Data)
	}

	crashed := newRun(t, ns, "crashed", &qjv1.Output{WriteOnFailure: true, OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "crashed"}}}}, "gen")
	exit(t, crashed.pod, map[string]int32{"gen": 137})
	req := &upload.Request{Containers: []upload.Container{{Name: "gen", Missing: []string{"creds.json"}}}}
	if status, _ := post(t, token(t, crashed.pod, upload.Audience), req); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if res := result(t, crashed.job); res.Persisted || !strings.Contains(strings.Join(res.Problems, ""), `container "gen" exited with code 137 before writing output file "creds.json"`) {
		t.Fatalf("crashed before writing: %+v", res)
	}
}

func TestWaitsForExitCodes(t *testing.T) {
	ns := newNamespace(t)
	spec := &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "late"}}}}
	r := newRun(t, ns, "late", spec, "gen")
	exit(t, r.pod, nil) // running: the kubelet has not reported the exit yet

	go func() {
		time.Sleep(time.Second)
		exit(t, r.pod, map[string]int32{"gen": 0})
	}()
	start := time.Now()
	status, answer := post(t, token(t, r.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}}))
	if status != http.StatusOK || !result(t, r.job).Persisted {
		t.Fatalf("status %d %+v", status, answer)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("answered before the exit code was reported")
	}

}

// TestHeldUntilExitCodes: an upload whose exit codes the kubelet has not
// reported within the endpoint's wait is held by the controller, recorded as
// pending, and persisted once they are; a held upload whose pod is gone is
// dropped without writing anything.
func TestHeldUntilExitCodes(t *testing.T) {
	ns := newNamespace(t)
	late := newRun(t, ns, "late", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "late"}}}}, "gen")
	exit(t, late.pod, nil)
	status, answer := post(t, token(t, late.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}}))
	if status != http.StatusOK || !strings.Contains(strings.Join(answer.Problems, ""), "the controller holds the upload") {
		t.Fatalf("status %d %+v", status, answer)
	}
	if res := result(t, late.job); res == nil || !res.Pending || res.Persisted || !strings.Contains(strings.Join(res.Problems, ""), `the kubelet has not reported the exit code of container "gen"`) {
		t.Fatalf("result: %+v", res)
	}
	held := secret(t, testHoldNamespace, heldName(late.pod.UID))
	if held.Annotations[heldPodName] != late.pod.Name || len(held.Data[heldKey]) == 0 {
		t.Fatalf("held upload: %+v", held.ObjectMeta)
	}
	if slices.Contains(secretNamesIn(t, ns), "late") {
		t.Fatal("output was written before the exit code was known")
	}
	// The persister retries (its answer was lost): held again, at once.
	start := time.Now()
	status, answer = post(t, token(t, late.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}}))
	if status != http.StatusOK || !slices.Contains(answer.Problems, heldNotice) || time.Since(start) >= testExitCodeTimeout {
		t.Fatalf("a retry of a held upload: status %d %+v after %s", status, answer, time.Since(start))
	}
	if again := secret(t, testHoldNamespace, heldName(late.pod.UID)); again.ResourceVersion != held.ResourceVersion {
		t.Fatal("a retry of a held upload with the same content rewrote its held Secret")
	}

	exit(t, late.pod, map[string]int32{"gen": 0})
	testenv.Eventually(t, 30*time.Second, "the held upload persisted", func() error {
		if res := result(t, late.job); res == nil || res.Pending || !res.Persisted {
			return fmt.Errorf("the held upload was not persisted: %+v", res)
		}
		return nil
	})
	written := secret(t, ns, "late")
	if string(written.Data["a"]) != "b" {
		t.Fatalf("output: %v", written.Data)
	}
	// Another retry, now that it is persisted, writes nothing again.
	if status, answer := post(t, token(t, late.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}})); status != http.StatusOK {
		t.Fatalf("a retry of a persisted upload: status %d %+v", status, answer)
	}
	if again := secret(t, ns, "late"); again.ResourceVersion != written.ResourceVersion {
		t.Fatal("a retry of a persisted upload wrote its Secret again")
	}
	testenv.Eventually(t, 10*time.Second, "the persisted held upload dropped", func() error {
		if slices.Contains(secretNamesIn(t, testHoldNamespace), heldName(late.pod.UID)) {
			return errors.New("the held upload was kept after it was persisted")
		}
		return nil
	})

	// A held upload of a container that failed is settled as failed.
	failed := newRun(t, ns, "failed", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "failed"}}}}, "gen")
	exit(t, failed.pod, nil)
	if status, answer := post(t, token(t, failed.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}})); status != http.StatusOK {
		t.Fatalf("status %d %+v", status, answer)
	}
	exit(t, failed.pod, map[string]int32{"gen": 3})
	testenv.Eventually(t, 30*time.Second, "the failed container's held upload settled", func() error {
		if res := result(t, failed.job); res == nil || res.Pending || res.Succeeded || len(res.Secrets) != 0 {
			return fmt.Errorf("the held upload of a failed container was not settled: %+v", res)
		}
		return nil
	})
	if slices.Contains(secretNamesIn(t, ns), "failed") {
		t.Fatal("output of a failed container was written")
	}

	// A failed attempt held for its exit codes while its retry persisted:
	// even with writeOnFailure, its output does not replace the retry's.
	retried := newRun(t, ns, "retried", &qjv1.Output{WriteOnFailure: true, OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "retried"}}}}, "gen")
	exit(t, retried.pod, nil)
	if status, answer := post(t, token(t, retried.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"v":"failed attempt"}`}})); status != http.StatusOK {
		t.Fatalf("status %d %+v", status, answer)
	}
	retry := retried.addPod(t, "retried-retry", "gen")
	exit(t, retry, map[string]int32{"gen": 0})
	if status, answer := post(t, token(t, retry, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"v":"retry"}`}})); status != http.StatusOK {
		t.Fatalf("retry: status %d %+v", status, answer)
	}
	exit(t, retried.pod, map[string]int32{"gen": 1})
	testenv.Eventually(t, 30*time.Second, "the superseded held upload settled", func() error {
		if res := podResult(t, retried.job, retried.pod.Name); res == nil || res.Pending || !strings.Contains(strings.Join(res.Problems, ""), "a later attempt, persisted its output first") {
			return fmt.Errorf("the superseded held upload was not settled: %+v", res)
		}
		return nil
	})
	if s := secret(t, ns, "retried"); string(s.Data["v"]) != "retry" {
		t.Fatalf("a failed attempt's held output replaced its retry's: %v", s.Data)
	}

	// The pod is deleted before the kubelet reports: nothing is written,
	// and the held upload is dropped.
	gone := newRun(t, ns, "gone", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "gone"}}}}, "gen")
	exit(t, gone.pod, nil)
	if status, answer := post(t, token(t, gone.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}})); status != http.StatusOK {
		t.Fatalf("status %d %+v", status, answer)
	}
	must(t, k8s.Delete(context.Background(), gone.pod, client.GracePeriodSeconds(0)))
	testenv.Eventually(t, 30*time.Second, "the deleted pod's held upload dropped", func() error {
		if slices.Contains(secretNamesIn(t, testHoldNamespace), heldName(gone.pod.UID)) {
			return errors.New("the held upload of a deleted pod was kept")
		}
		return nil
	})
	if res := result(t, gone.job); res == nil || !res.Pending || res.Persisted || slices.Contains(secretNamesIn(t, ns), "gone") {
		t.Fatalf("a dropped upload wrote output or changed its record: %+v", res)
	}
}

// TestForgedHeldUploadIsIgnored: whoever may write Secrets in a run's
// namespace plants one shaped like a held upload, naming a pod of a running
// run whose container exited 0: the controller reads held uploads only from
// its own namespace, and writes nothing.
func TestForgedHeldUploadIsIgnored(t *testing.T) {
	ns := newNamespace(t)
	victim := newRun(t, ns, "victim", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "victim-creds"}}}}, "gen")
	exit(t, victim.pod, map[string]int32{"gen": 0})
	raw, err := json.Marshal(files(map[string]map[string]string{"gen": {"creds.json": `{"user":"forged"}`}}))
	must(t, err)
	forged := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: heldName(victim.pod.UID), Namespace: ns, Labels: map[string]string{heldLabel: "true"},
			Annotations: map[string]string{heldPodNamespace: ns, heldPodName: victim.pod.Name, heldPodUID: string(victim.pod.UID)}},
		Type: heldType, Data: map[string][]byte{heldKey: raw},
	}
	must(t, k8s.Create(context.Background(), forged))
	// A genuine held upload, settled after the forged one was planted: the
	// holder has looked at what it holds since.
	honest := newRun(t, ns, "honest", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "honest-creds"}}}}, "gen")
	exit(t, honest.pod, nil)
	if status, answer := post(t, token(t, honest.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"a":"b"}`}})); status != http.StatusOK {
		t.Fatalf("status %d %+v", status, answer)
	}
	exit(t, honest.pod, map[string]int32{"gen": 0})
	testenv.Eventually(t, 30*time.Second, "the genuine held upload persisted", func() error {
		if res := result(t, honest.job); res == nil || !res.Persisted {
			return fmt.Errorf("the genuine held upload was not persisted: %+v", res)
		}
		return nil
	})
	if slices.Contains(secretNamesIn(t, ns), "victim-creds") || result(t, victim.job) != nil {
		t.Fatal("a held upload planted in the run's namespace was persisted")
	}
}

// TestUploadOfAnOlderRun: once a newer run is recorded, a late upload of an
// older run's pod writes nothing.
func TestUploadOfAnOlderRun(t *testing.T) {
	ns := newNamespace(t)
	spec := &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "creds"}}}}
	first := newRun(t, ns, "older", spec, "gen")
	exit(t, first.pod, map[string]int32{"gen": 0})
	late := token(t, first.pod, upload.Audience)
	second := addRun(t, first.qjob, 2, spec, "gen")
	exit(t, second.pod, map[string]int32{"gen": 0})
	if status, answer := post(t, token(t, second.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"v":"new"}`}})); status != http.StatusOK {
		t.Fatalf("run 2: status %d %+v", status, answer)
	}
	before := secret(t, ns, "creds")
	status, answer := post(t, late, files(map[string]map[string]string{"gen": {"creds.json": `{"v":"old"}`}}))
	if status != http.StatusConflict || !strings.Contains(strings.Join(answer.Problems, " "), "is not the Job of the current run 2") {
		t.Fatalf("late upload of run 1: status %d %+v; want 409 naming the current run", status, answer)
	}
	if after := secret(t, ns, "creds"); after.ResourceVersion != before.ResourceVersion || string(after.Data["v"]) != "new" {
		t.Fatalf("the late upload changed creds: %v", after.Data)
	}
}

// TestOriginalOutputsAreTakenOver: a plain Secret the original quarks-job
// wrote (no owner, labeled with the container) is taken over by the first
// upload, with an Event; with deletePolicy Retain (the default) it stays
// ownerless, annotated as the QuarksJob's output, so it outlives the
// QuarksJob and a QuarksJob of the same name writes it again.
func TestOriginalOutputsAreTakenOver(t *testing.T) {
	ns := newNamespace(t)
	original := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns,
		Labels: map[string]string{qjv1.LabelPersistentSecretContainer: "gen", "team": "old"}},
		Data: map[string][]byte{"password": []byte("from-the-original")}}
	must(t, k8s.Create(context.Background(), original))
	spec := &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: "creds"}}}}
	r := newRun(t, ns, "moved", spec, "gen")
	exit(t, r.pod, map[string]int32{"gen": 0})
	if status, answer := post(t, token(t, r.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"password":"new"}`}})); status != http.StatusOK {
		t.Fatalf("status %d %+v", status, answer)
	}
	creds := secret(t, ns, "creds")
	if string(creds.Data["password"]) != "new" || creds.Labels["team"] != "" || creds.Annotations[qjv1.AnnotationOutputOf] != "moved" || len(creds.OwnerReferences) != 0 {
		t.Fatalf("taken-over creds: data %v labels %v annotations %v owners %v", creds.Data, creds.Labels, creds.Annotations, creds.OwnerReferences)
	}
	if res := result(t, r.job); !res.Persisted {
		t.Fatalf("result: %+v", res)
	}
	expectEvent(t, r.qjob, "SecretAdopted", "took over Secret creds, written by the original quarks-job")

	// Another QuarksJob declaring the same Secret is refused: it is moved's output.
	other := newRun(t, ns, "other", spec, "gen")
	exit(t, other.pod, map[string]int32{"gen": 0})
	if status, _ := post(t, token(t, other.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"password":"other"}`}})); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if res := result(t, other.job); res.Persisted || !strings.Contains(strings.Join(res.Problems, ""), `it is the output of QuarksJob "moved"`) {
		t.Fatalf("other's result: %+v", res)
	}

	// With deletePolicy Delete the next upload makes the QuarksJob its controller.
	deleting := &qjv1.Output{DeletePolicy: qjv1.OutputDelete, OutputMap: spec.OutputMap}
	r2 := addRun(t, r.qjob, 2, deleting, "gen")
	exit(t, r2.pod, map[string]int32{"gen": 0})
	if status, _ := post(t, token(t, r2.pod, upload.Audience), files(map[string]map[string]string{"gen": {"creds.json": `{"password":"new"}`}})); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	creds = secret(t, ns, "creds")
	if ref := metav1.GetControllerOf(creds); ref == nil || ref.UID != r.qjob.UID {
		t.Fatalf("with deletePolicy Delete, creds must be controlled by the QuarksJob: %v", creds.OwnerReferences)
	}
	if _, annotated := creds.Annotations[qjv1.AnnotationOutputOf]; annotated {
		t.Errorf("creds keeps the Retain annotation: %v", creds.Annotations)
	}
}

// TestUploadProtocolVersions: the version skew contract. A persister that
// speaks a protocol version this controller does not serve is refused with a
// message that names both versions, recorded on the run, where the user
// looks; nothing is written. The answer is 503, since another replica may
// serve the version during an upgrade. One that says v1alpha1, or nothing
// (persisters released before the header), is served, and its record then
// stays.
func TestUploadProtocolVersions(t *testing.T) {
	ns := newNamespace(t)
	r := newRun(t, ns, "skew", fullSpec(), "gen", "fan")
	exit(t, r.pod, map[string]int32{"gen": 0, "fan": 0})
	bearer := token(t, r.pod, upload.Audience)
	refusedBy := func(header http.Header) (int, []string) {
		t.Helper()
		c := uploader
		c.Header = header
		status, answer, err := c.Post(context.Background(), bearer, files(goodOutput))
		must(t, err)
		return status, answer.Problems
	}

	status, problems := refusedBy(http.Header{upload.HeaderVersion: {"v2"}, "User-Agent": {upload.UserAgentPrefix + "v9.0.0"}})
	want := `output of pod ` + r.pod.Name + ` not persisted: its persister (v9.0.0) speaks upload protocol "v2", and this controller`
	if status != http.StatusServiceUnavailable || len(problems) != 1 || !strings.HasPrefix(problems[0], want) ||
		!strings.Contains(problems[0], `serves "v1alpha1"`) {
		t.Fatalf("status %d, problems %q; want 503 and %q", status, problems, want)
	}
	res := podResult(t, r.job, r.pod.Name)
	if res == nil || res.Persisted || len(res.Problems) != 1 || res.Problems[0] != problems[0] {
		t.Fatalf("the run's record of the pod: %+v", res)
	}
	if names := secretNamesIn(t, ns); len(names) != 0 {
		t.Errorf("a refused upload wrote Secrets: %v", names)
	}
	expectEvent(t, r.qjob, "UploadProtocolUnsupported", want)

	// What a client says of itself reaches the record only in a plain form.
	odd := strings.Repeat("é", 40) + "\u202e"
	status, problems = refusedBy(http.Header{upload.HeaderVersion: {odd}, "User-Agent": {upload.UserAgentPrefix + `v1 "see https://example.invalid"`}})
	if status != http.StatusServiceUnavailable || len(problems) != 1 ||
		!strings.Contains(problems[0], `its persister (of unknown version) speaks upload protocol "`+strings.Repeat("é", 32)+`…"`) {
		t.Errorf("status %d, problems %q", status, problems)
	}

	status, problems = refusedBy(http.Header{upload.HeaderVersion: {upload.Version}})
	if status != http.StatusOK || len(problems) != 0 {
		t.Fatalf("protocol %s: status %d, problems %q", upload.Version, status, problems)
	}
	if res := podResult(t, r.job, r.pod.Name); res == nil || !res.Persisted || len(res.Problems) != 0 {
		t.Fatalf("the pod's record after an upload in the served protocol: %+v", res)
	}
	// A later upload in an unknown version does not take the persisted output back.
	status, problems = refusedBy(http.Header{upload.HeaderVersion: {"v2"}})
	if status != http.StatusBadRequest || len(problems) != 1 || !strings.HasSuffix(problems[0], "the output of an earlier upload stays persisted") {
		t.Errorf("status %d, problems %q", status, problems)
	}
	if res := podResult(t, r.job, r.pod.Name); res == nil || !res.Persisted {
		t.Errorf("the pod's record after a refused upload: %+v", res)
	}
}
