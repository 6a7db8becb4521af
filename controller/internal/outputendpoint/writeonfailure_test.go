package outputendpoint

import (
	"context"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// TestWriteOnFailurePaths checks each path of docs/runs.md's writeOnFailure
// rule that TestFailedContainers does not: a pod retried after a failure,
// with and without writeOnFailure, and a run that ended (canceled, timed
// out) before its pod uploaded.
func TestWriteOnFailurePaths(t *testing.T) {
	ns := newNamespace(t)
	out := func(v string) *upload.Request {
		return files(map[string]map[string]string{"gen": {"creds.json": `{"v":"` + v + `"}`}})
	}
	spec := func(writeOnFailure bool, name string) *qjv1.Output {
		return &qjv1.Output{WriteOnFailure: writeOnFailure, OutputMap: qjv1.OutputMap{"gen": {"creds.json": {Name: name}}}}
	}

	// Retried, writeOnFailure off: the failed attempt writes nothing, the retry writes.
	off := newRun(t, ns, "retry-off", spec(false, "retry-off"), "gen")
	exit(t, off.pod, map[string]int32{"gen": 1})
	if status, resp := post(t, token(t, off.pod, upload.Audience), out("failed")); status != http.StatusOK {
		t.Fatalf("failed attempt: status %d %v", status, resp)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "retry-off"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the failed attempt wrote its output without writeOnFailure: %v", err)
	}
	retry1 := off.addPod(t, "retry-off-1-retry", "gen")
	exit(t, retry1, map[string]int32{"gen": 0})
	if status, _ := post(t, token(t, retry1, upload.Audience), out("retried")); status != http.StatusOK {
		t.Fatalf("retry: status %d", status)
	}
	if s := secret(t, ns, "retry-off"); string(s.Data["v"]) != "retried" {
		t.Errorf("retry-off = %v; want the retry's output", s.Data)
	}

	// Retried, writeOnFailure on: the failed attempt's output is written, the retry's replaces it.
	on := newRun(t, ns, "retry-on", spec(true, "retry-on"), "gen")
	exit(t, on.pod, map[string]int32{"gen": 1})
	if status, _ := post(t, token(t, on.pod, upload.Audience), out("failed")); status != http.StatusOK {
		t.Fatalf("failed attempt: status %d", status)
	}
	if s := secret(t, ns, "retry-on"); string(s.Data["v"]) != "failed" {
		t.Errorf("retry-on after the failed attempt = %v; want its output (writeOnFailure)", s.Data)
	}
	retry2 := on.addPod(t, "retry-on-1-retry", "gen")
	exit(t, retry2, map[string]int32{"gen": 0})
	if status, _ := post(t, token(t, retry2, upload.Audience), out("retried")); status != http.StatusOK {
		t.Fatalf("retry: status %d", status)
	}
	if s := secret(t, ns, "retry-on"); string(s.Data["v"]) != "retried" {
		t.Errorf("retry-on = %v; want the retry's output", s.Data)
	}

	// Ended before the upload (canceled, or failed by the run start timeout): nothing is
	// written, whatever writeOnFailure says.
	ended := newRun(t, ns, "ended", spec(true, "ended"), "gen")
	exit(t, ended.pod, map[string]int32{"gen": 1})
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &qjv1.QuarksJob{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ended.qjob), fresh); err != nil {
			return err
		}
		fresh.Status.LastRun.Result, fresh.Status.LastRun.Message = qjv1.RunFailed, "canceled"
		return k8s.Status().Update(context.Background(), fresh)
	}))
	status, answer := post(t, token(t, ended.pod, upload.Audience), out("late"))
	if status != http.StatusConflict || !strings.Contains(strings.Join(answer.Problems, " "), "has already ended") {
		t.Fatalf("upload of an ended run: status %d %+v; want 409", status, answer)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ended"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("an ended run's upload wrote its output: %v", err)
	}
}
