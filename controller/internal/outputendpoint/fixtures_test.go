package outputendpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint/uploadtest"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// testRun is a QuarksJob with one run: its Job and one pod.
type testRun struct {
	ns   string
	qjob *qjv1.QuarksJob
	job  *batchv1.Job
	pod  *corev1.Pod
}

// newRun creates a QuarksJob, a Job it controls carrying the output spec
// snapshot, and a pod of that Job running the given containers.
func newRun(t testing.TB, ns, name string, spec *qjv1.Output, containers ...string) *testRun {
	t.Helper()
	ctx := context.Background()
	podSpec := podSpecOf(containers...)
	qjob := &qjv1.QuarksJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: qjv1.QuarksJobSpec{
			Output:   spec,
			Trigger:  qjv1.Trigger{Strategy: qjv1.StrategyManual},
			Template: qjv1.JobTemplate{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: podSpec}}},
		},
	}
	must(t, k8s.Create(ctx, qjob))
	return addRun(t, qjob, 1, spec, containers...)
}

// podSpecOf is the pod spec of a run's containers, each running busybox.
func podSpecOf(containers ...string) corev1.PodSpec {
	podSpec := corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: uploadtest.ServiceAccount}
	for _, c := range containers {
		podSpec.Containers = append(podSpec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	return podSpec
}

// addRun creates run number n of qjob with the given output spec snapshot:
// its Job, a pod of that Job, and the run's record in the QuarksJob's status,
// as the controller writes it.
func addRun(t testing.TB, qjob *qjv1.QuarksJob, n int, spec *qjv1.Output, containers ...string) *testRun {
	t.Helper()
	ctx := context.Background()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", qjob.Name, n), Namespace: qjob.Namespace,
			Labels:          map[string]string{qjv1.LabelQJobName: qjob.Name, qjv1.LabelRun: fmt.Sprint(n)},
			OwnerReferences: []metav1.OwnerReference{*controllerRef(qjv1.GroupVersion.String(), "QuarksJob", qjob.Name, qjob.UID)},
		},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: podSpecOf(containers...)}},
	}
	must(t, k8s.Create(ctx, job))
	recordRun(t, qjob, &qjv1.Run{Number: int64(n), JobName: job.Name, JobUID: job.UID, Trigger: qjv1.RunTriggerNow,
		Result: qjv1.RunRunning, Output: spec})
	pod := newPod(t, qjob.Namespace, job.Name+"-pod", controllerRef("batch/v1", "Job", job.Name, job.UID), containers...)
	return &testRun{ns: qjob.Namespace, qjob: qjob, job: job, pod: pod}
}

// recordRun writes run as the QuarksJob's current run.
func recordRun(t testing.TB, qjob *qjv1.QuarksJob, run *qjv1.Run) {
	t.Helper()
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &qjv1.QuarksJob{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(qjob), fresh); err != nil {
			return err
		}
		fresh.Status.LastRun = run
		return k8s.Status().Update(context.Background(), fresh)
	}))
}

// addPod creates another pod of r's Job, as the Job controller does for a
// retry or another completion.
func (r *testRun) addPod(t testing.TB, name string, containers ...string) *corev1.Pod {
	t.Helper()
	return newPod(t, r.ns, name, controllerRef("batch/v1", "Job", r.job.Name, r.job.UID), containers...)
}

func newPod(t testing.TB, ns, name string, owner *metav1.OwnerReference, containers ...string) *corev1.Pod {
	t.Helper()
	pod := uploadtest.Pod(ns, name, owner, testPersisterImage, containers...)
	must(t, k8s.Create(context.Background(), pod))
	return pod
}

func controllerRef(apiVersion, kind, name string, uid types.UID) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}
}

// exit sets the pod's container statuses as the kubelet would: each named
// container terminated with its code.
func exit(t testing.TB, pod *corev1.Pod, codes map[string]int32) {
	t.Helper()
	ctx := context.Background()
	fresh := &corev1.Pod{}
	must(t, k8s.Get(ctx, client.ObjectKeyFromObject(pod), fresh))
	uploadtest.Exit(fresh, codes)
	must(t, k8s.Status().Update(ctx, fresh))
}

// token requests a token bound to the pod, as the kubelet does for the
// persister's projected volume.
func token(t testing.TB, pod *corev1.Pod, audience string) string {
	t.Helper()
	bearer, err := uploadtest.Token(context.Background(), clientset, pod, audience)
	must(t, err)
	return bearer
}

// tokenRequestFor asks for a token of audience quarks-job bound to any object.
func tokenRequestFor(kind, name, uid string) *authnv1.TokenRequest {
	return &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences:         []string{upload.Audience},
		ExpirationSeconds: ptr.To[int64](600),
		BoundObjectRef:    &authnv1.BoundObjectReference{APIVersion: "v1", Kind: kind, Name: name, UID: types.UID(uid)},
	}}
}

// post uploads once, as the persister does, and returns the status and answer.
func post(t testing.TB, bearer string, req *upload.Request) (int, upload.Response) {
	t.Helper()
	status, answer, err := uploader.Post(context.Background(), bearer, req)
	must(t, err)
	return status, answer
}

// files builds an upload: container → file → content.
func files(byContainer map[string]map[string]string) *upload.Request {
	return uploadtest.Files(byContainer)
}

// result reads the newest Result the endpoint recorded in the run's record
// (the QuarksJob's status), or nil when there is none for job.
func result(t testing.TB, job *batchv1.Job) *upload.Result {
	t.Helper()
	owner := metav1.GetControllerOf(job)
	qjob := &qjv1.QuarksJob{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: job.Namespace, Name: owner.Name}, qjob))
	last := qjob.Status.LastRun
	if last == nil || last.JobUID != job.UID || len(last.Uploads) == 0 {
		return nil
	}
	return &last.Uploads[len(last.Uploads)-1]
}

// podResult reads the Result recorded for one pod of job's run.
func podResult(t testing.TB, job *batchv1.Job, pod string) *upload.Result {
	t.Helper()
	owner := metav1.GetControllerOf(job)
	qjob := &qjv1.QuarksJob{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: job.Namespace, Name: owner.Name}, qjob))
	if last := qjob.Status.LastRun; last != nil && last.JobUID == job.UID {
		for i := range last.Uploads {
			if last.Uploads[i].Pod == pod {
				return &last.Uploads[i]
			}
		}
	}
	return nil
}

func secret(t testing.TB, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatalf("Secret %s: %v", name, err)
	}
	return s
}

func secretNamesIn(t testing.TB, ns string) []string {
	t.Helper()
	var list corev1.SecretList
	must(t, k8s.List(context.Background(), &list, client.InNamespace(ns)))
	var names []string
	for _, s := range list.Items {
		names = append(names, s.Name)
	}
	return names
}

// eventNotes lists "reason: note" of the Events regarding the QuarksJob.
func eventNotes(t testing.TB, qjob *qjv1.QuarksJob) []string {
	t.Helper()
	var list eventsv1.EventList
	must(t, k8s.List(context.Background(), &list, client.InNamespace(qjob.Namespace)))
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.UID == qjob.UID {
			notes = append(notes, e.Reason+": "+e.Note)
		}
	}
	return notes
}

// expectEvent waits for an Event of the reason regarding the QuarksJob whose
// note contains want.
func expectEvent(t testing.TB, qjob *qjv1.QuarksJob, reason, want string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the Event", func() error {
		notes := eventNotes(t, qjob)
		for _, n := range notes {
			if strings.HasPrefix(n, reason+": ") && strings.Contains(n, want) {
				return nil
			}
		}
		return fmt.Errorf("no %s Event on QuarksJob %s mentions %q; events: %q", reason, qjob.Name, want, notes)
	})
}

// resign re-signs a real token with the cluster's service-account key, with
// its expiry moved to exp: with exp in the past, a genuine but expired token.
func resign(t testing.TB, jwt string, exp time.Time) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWS: %q", jwt)
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	must(t, err)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	must(t, err)
	var claims map[string]any
	must(t, json.Unmarshal(payload, &claims))
	claims["iat"] = exp.Add(-time.Hour).Unix()
	claims["nbf"] = exp.Add(-time.Hour).Unix()
	claims["exp"] = exp.Unix()
	payload, err = json.Marshal(claims)
	must(t, err)
	signingInput := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)

	var hdr struct{ Alg string }
	must(t, json.Unmarshal(header, &hdr))
	keyPEM, err := os.ReadFile(saKeyPath)
	must(t, err)
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("no PEM block in the service-account signing key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		key, err = x509.ParseECPrivateKey(block.Bytes)
	}
	must(t, err)
	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok || hdr.Alg != "ES256" {
		t.Fatalf("test signs ES256 with an ECDSA key; token alg %s, key %T", hdr.Alg, key)
	}
	digest := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, ecKey, digest[:])
	must(t, err)
	sig := append(pad32(r), pad32(s)...)
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func pad32(n *big.Int) []byte {
	b := n.Bytes()
	return append(make([]byte, 32-len(b)), b...)
}
