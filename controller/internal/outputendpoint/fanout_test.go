package outputendpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint/uploadtest"
	"code.cloudfoundry.org/quarks-job/controller/internal/secretwriter"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// TestFanOutOf5000Secrets: 50 pods of one run each upload a fan-out file of
// 100 keys, 5,000 Secrets in all. Every Secret is written, every pod's upload
// is recorded, and the run's record stays small: each upload lists at most
// qjv1.MaxRecordedSecrets Secrets and counts the rest.
func TestFanOutOf5000Secrets(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 5,000 Secrets")
	}
	const pods, keys = 50, 100
	ns := newNamespace(t)
	spec := &qjv1.Output{DeletePolicy: qjv1.OutputDelete,
		OutputMap: qjv1.OutputMap{"fan": {"many.json": {Name: "many", PersistenceMethod: qjv1.PersistFanOut}}}}
	r := newRun(t, ns, "fanout", spec, "fan")
	all := []*corev1.Pod{r.pod}
	for i := 1; i < pods; i++ {
		all = append(all, r.addPod(t, fmt.Sprintf("fanout-1-pod-%d", i), "fan"))
	}

	start := time.Now()
	errs := make(chan error, pods)
	for i, pod := range all {
		exit(t, pod, map[string]int32{"fan": 0})
		content := map[string]string{}
		for k := range keys {
			content[fmt.Sprintf("p%02d-k%03d", i, k)] = fmt.Sprintf(`{"value":"%d-%d"}`, i, k)
		}
		body, err := json.Marshal(content)
		must(t, err)
		bearer := token(t, pod, upload.Audience)
		go func() {
			status, answer := post(t, bearer, files(map[string]map[string]string{"fan": {"many.json": string(body)}}))
			if status != http.StatusOK || len(answer.Problems) > 0 {
				errs <- fmt.Errorf("pod %s: status %d, problems %v", pod.Name, status, answer.Problems)
				return
			}
			errs <- nil
		}()
	}
	for range all {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	t.Logf("figure: %d pods uploaded %d fan-out Secrets in %s", pods, pods*keys, time.Since(start).Round(time.Millisecond))

	list := &corev1.SecretList{}
	must(t, k8s.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{qjv1.LabelPersistentSecretContainer: "fan"}))
	if len(list.Items) != pods*keys {
		t.Errorf("%d Secrets written, want %d", len(list.Items), pods*keys)
	}

	qjob := &qjv1.QuarksJob{}
	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(r.qjob), qjob))
	uploads := qjob.Status.LastRun.Uploads
	if len(uploads) != pods {
		t.Fatalf("%d uploads recorded, want %d", len(uploads), pods)
	}
	for _, u := range uploads {
		if !u.Persisted || u.WrittenSecrets() != keys || len(u.Secrets) > qjv1.MaxRecordedSecrets {
			t.Errorf("upload of %s: persisted %v, %d Secrets counted, %d listed", u.Pod, u.Persisted, u.WrittenSecrets(), len(u.Secrets))
		}
	}
	size, err := json.Marshal(qjob)
	must(t, err)
	t.Logf("figure: the QuarksJob with the run's record of %d uploads is %d bytes", len(uploads), len(size))
	if len(size) > 2*maxUploadsBytes {
		t.Errorf("the QuarksJob is %d bytes; its record must stay near %d", len(size), maxUploadsBytes)
	}
	if !strings.Contains(string(size), `"secretCount":100`) {
		t.Error("no upload says how many Secrets it wrote")
	}
}

// TestFanOutBeyondTheBound: a fan-out file of more keys than one upload may
// make Secrets (output.DefaultMaxSecrets) is refused before any Secret is
// written, and the run's record says why: the file, its keys and the bound.
func TestFanOutBeyondTheBound(t *testing.T) {
	ns := newNamespace(t)
	spec := &qjv1.Output{OutputMap: qjv1.OutputMap{"fan": {"many.json": {Name: "many", PersistenceMethod: qjv1.PersistFanOut}}}}
	r := newRun(t, ns, "toomany", spec, "fan")
	exit(t, r.pod, map[string]int32{"fan": 0})
	content := map[string]string{}
	for k := range output.DefaultMaxSecrets + 1 {
		content[fmt.Sprintf("a%d", k)] = ""
	}
	body, err := json.Marshal(content)
	must(t, err)
	_, answer := post(t, token(t, r.pod, upload.Audience), files(map[string]map[string]string{"fan": {"many.json": string(body)}}))
	want := fmt.Sprintf(`output file "many.json" of container "fan" (fan-out) has %d keys; with the 0 Secrets of the upload's other files that makes %d Secrets, more than the %d one upload may make`,
		output.DefaultMaxSecrets+1, output.DefaultMaxSecrets+1, output.DefaultMaxSecrets)
	if !strings.Contains(strings.Join(answer.Problems, "\n"), want) {
		t.Errorf("answer problems %q; want %q", answer.Problems, want)
	}
	list := &corev1.SecretList{}
	must(t, k8s.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{qjv1.LabelPersistentSecretContainer: "fan"}))
	if len(list.Items) != 0 {
		t.Errorf("%d Secrets written; want none", len(list.Items))
	}
	qjob := &qjv1.QuarksJob{}
	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(r.qjob), qjob))
	if u := qjob.Status.LastRun.Uploads; len(u) != 1 || u[0].Persisted || !strings.Contains(strings.Join(u[0].Problems, "\n"), want) {
		t.Errorf("recorded uploads %+v; want one, not persisted, with the problem", u)
	}
}

// TestSecretWritesAreBudgetedPerNamespace: while one namespace's large
// fan-out waits for its share of Secret writes, another namespace's upload
// is written at once; the large one still writes every Secret.
func TestSecretWritesAreBudgetedPerNamespace(t *testing.T) {
	const keys, perSecond = 200, 20 // 40 at once, then 20/s: about 8 s
	httpClient, err := rest.HTTPClientFor(restConfig)
	must(t, err)
	h := &handler{client: k8s, reader: k8s, writer: &secretwriter.Writer{Client: k8s, Reader: k8s},
		exitCodeTimeout: testExitCodeTimeout, log: logr.Discard(), persisterImage: testPersisterImage,
		limits: newLimits(Limits{SecretWritesPerSecond: perSecond})}
	h.issuer, err = newIssuer(restConfig, httpClient, logr.Discard())
	must(t, err)
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	c := uploadtest.Client{URL: srv.URL + upload.Path, HTTP: srv.Client()}

	bigNS, smallNS := newNamespace(t), newNamespace(t)
	big := newRun(t, bigNS, "big", &qjv1.Output{DeletePolicy: qjv1.OutputDelete,
		OutputMap: qjv1.OutputMap{"fan": {"many.json": {Name: "many", PersistenceMethod: qjv1.PersistFanOut}}}}, "fan")
	small := newRun(t, smallNS, "small", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"out.json": {Name: "small-out"}}}}, "gen")
	exit(t, big.pod, map[string]int32{"fan": 0})
	exit(t, small.pod, map[string]int32{"gen": 0})

	content := map[string]string{}
	for k := range keys {
		content[fmt.Sprintf("k%03d", k)] = "v"
	}
	body, err := json.Marshal(content)
	must(t, err)
	bigDone := make(chan error, 1)
	go func() {
		status, answer, err := c.Post(context.Background(), token(t, big.pod, upload.Audience), files(map[string]map[string]string{"fan": {"many.json": string(body)}}))
		if err == nil && (status != http.StatusOK || len(answer.Problems) > 0) {
			err = fmt.Errorf("status %d, problems %v", status, answer.Problems)
		}
		bigDone <- err
	}()
	testenv.Eventually(t, 10*time.Second, "the large fan-out writing", func() error {
		if n := len(secretNamesIn(t, bigNS)); n < 2*perSecond {
			return fmt.Errorf("%d of its Secrets written", n)
		}
		return nil
	})

	status, answer, err := c.Post(context.Background(), token(t, small.pod, upload.Audience), files(map[string]map[string]string{"gen": {"out.json": `{"k":"v"}`}}))
	must(t, err)
	if status != http.StatusOK || len(answer.Secrets) != 1 {
		t.Fatalf("the other namespace's upload: status %d %+v", status, answer)
	}
	select {
	case err := <-bigDone:
		t.Fatalf("the large fan-out ended before the other namespace's upload was written (%v): its writes were not paced", err)
	default:
	}
	must(t, <-bigDone)
	if n := len(secretNamesIn(t, bigNS)); n < keys {
		t.Errorf("%d of the large fan-out's %d Secrets written", n, keys)
	}
}

// TestRefusedUploadIsNotedOnTheRun: an upload refused because the endpoint
// is busy is noted on the run (so a persister that gives up leaves a true
// message); the pod's next upload replaces the note.
func TestRefusedUploadIsNotedOnTheRun(t *testing.T) {
	httpClient, err := rest.HTTPClientFor(restConfig)
	must(t, err)
	h := &handler{client: k8s, reader: k8s, writer: &secretwriter.Writer{Client: k8s, Reader: k8s},
		exitCodeTimeout: testExitCodeTimeout, log: logr.Discard(), persisterImage: testPersisterImage,
		limits: newLimits(Limits{BusyWait: 50 * time.Millisecond})}
	h.issuer, err = newIssuer(restConfig, httpClient, logr.Discard())
	must(t, err)
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	c := uploadtest.Client{URL: srv.URL + upload.Path, HTTP: srv.Client()}

	r := newRun(t, newNamespace(t), "busy", &qjv1.Output{OutputMap: qjv1.OutputMap{"gen": {"out.json": {Name: "busy-out"}}}}, "gen")
	exit(t, r.pod, map[string]int32{"gen": 0})
	req := files(map[string]map[string]string{"gen": {"out.json": `{"k":"v"}`}})

	// Every byte in flight is taken: the upload is refused busy.
	must(t, h.limits.bytes.Acquire(context.Background(), h.limits.maxBytes))
	status, _, err := c.Post(context.Background(), token(t, r.pod, upload.Audience), req)
	must(t, err)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d with no room, want 503", status)
	}
	res := podResult(t, r.job, r.pod.Name)
	if res == nil || res.Persisted || !strings.Contains(strings.Join(res.Problems, ""), "its upload was received and refused: the output endpoint is busy") {
		t.Fatalf("the run's record of the refused upload: %+v", res)
	}

	h.limits.bytes.Release(h.limits.maxBytes)
	status, answer, err := c.Post(context.Background(), token(t, r.pod, upload.Audience), req)
	must(t, err)
	if status != http.StatusOK || len(answer.Secrets) != 1 {
		t.Fatalf("the retry: status %d %+v", status, answer)
	}
	if res := podResult(t, r.job, r.pod.Name); res == nil || !res.Persisted || len(res.Problems) != 0 {
		t.Fatalf("the retry did not replace the note: %+v", res)
	}
}
