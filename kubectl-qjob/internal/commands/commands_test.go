package commands

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/version"
)

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("unknown flag"), ExitCommandFailed},
		{&ExitError{Code: ExitRunFailed}, ExitRunFailed},
		{fmt.Errorf("waiting: %w", &ExitError{Code: ExitTimeout}), ExitTimeout},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d; want %d", c.err, got, c.want)
		}
	}
}

func TestExplain(t *testing.T) {
	secrets := schema.GroupResource{Resource: "secrets"}
	forbidden := explain(apierrors.NewForbidden(secrets, "", errors.New("RBAC")), "list", "secrets", "team", "")
	if !strings.Contains(forbidden.Error(), `you may not list secrets in namespace "team"`) ||
		!strings.Contains(forbidden.Error(), "kubectl auth can-i list secrets -n team") || ExitCode(forbidden) != ExitCommandFailed {
		t.Errorf("forbidden: %v", forbidden)
	}
	missing := explain(apierrors.NewNotFound(schema.GroupResource{Group: qjv1.GroupName, Resource: "quarksjobs"}, "x"), "get", "quarksjobs", "team", "x")
	if missing.Error() != `quarksjob "x" not found in namespace "team"` {
		t.Errorf("not found: %v", missing)
	}
	if explain(nil, "get", "pods", "team", "") != nil {
		t.Error("no error became one")
	}
}

func TestRequestedRun(t *testing.T) {
	q := &qjv1.QuarksJob{}
	if n := requestedRun(q); n != 0 {
		t.Errorf("new QuarksJob: %d", n)
	}
	q.Status.RunCount = 4 // a status without the annotation, as the original left it
	if n := requestedRun(q); n != 4 {
		t.Errorf("runCount 4: %d", n)
	}
	q.Annotations = map[string]string{}
	qjv1.RunRequest{Run: 5, By: qjv1.RunTriggerNow}.Annotate(q.Annotations)
	if n := requestedRun(q); n != 5 {
		t.Errorf("requested 5: %d", n)
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-ago)); return &t }
	q := &qjv1.QuarksJob{ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "team"}}
	q.Spec.Trigger.Strategy = qjv1.StrategyManual
	q.Status.RunCount = 2
	q.Status.LastRun = &qjv1.Run{Number: 2, JobName: "smoke-2", Trigger: qjv1.RunTriggerNow, Result: qjv1.RunFailed,
		StartTime: at(3 * time.Minute), CompletionTime: at(2 * time.Minute), Message: "the job failed: BackoffLimitExceeded"}
	q.Status.PreviousRuns = []qjv1.RunSummary{{Number: 1, Trigger: qjv1.RunTriggerNow, Result: qjv1.RunSucceeded,
		StartTime: at(time.Hour), CompletionTime: at(59 * time.Minute), SecretCount: 3, Message: "ok"}}
	var out bytes.Buffer
	describe(&out, q, now)
	text := out.String()
	squeeze := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	lines := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		lines[squeeze(l)] = true
	}
	for _, want := range []string{
		"Strategy:     manual (an errand at rest)",
		"Waiting for:  a trigger: kubectl qjob run smoke",
		"Last run:     2, Failed, trigger Now",
		"Message:      the job failed: BackoffLimitExceeded",
		"RUN   TRIGGER   RESULT      STARTED   DURATION   SECRETS   MESSAGE",
		"2     Now       Failed      3m        60s        0         the job failed: BackoffLimitExceeded",
		"1     Now       Succeeded   60m       60s        3         ok",
	} {
		if !lines[squeeze(want)] {
			t.Errorf("describe lacks the line %q:\n%s", want, text)
		}
	}
}

func TestWaitsFor(t *testing.T) {
	cases := []struct {
		name string
		q    func(q *qjv1.QuarksJob)
		want string
	}{
		{"errand", func(q *qjv1.QuarksJob) { q.Spec.Trigger.Strategy = qjv1.StrategyManual }, "a trigger: kubectl qjob run q"},
		{"one-off", func(q *qjv1.QuarksJob) { q.Spec.Trigger.Strategy = qjv1.StrategyDone }, "nothing; kubectl qjob run q runs it again"},
		{"config change", func(q *qjv1.QuarksJob) {
			q.Spec.Trigger.Strategy, q.Spec.UpdateOnConfigChange = qjv1.StrategyDone, true
		}, "a change of the ConfigMaps or Secrets its pods reference"},
		{"requested", func(q *qjv1.QuarksJob) { q.Spec.Trigger.Strategy = qjv1.StrategyNow }, "the controller to accept the trigger"},
		{"running", func(q *qjv1.QuarksJob) {
			q.Status.LastRun = &qjv1.Run{Number: 3, JobName: "q-3", Result: qjv1.RunRunning}
		}, "run 3 to end (Job q-3)"},
		{"references", func(q *qjv1.QuarksJob) {
			q.Status.Conditions = []metav1.Condition{{Type: qjv1.ConditionWaitingForReferences, Status: metav1.ConditionTrue,
				Message: "the run starts when these exist: Secret db"}}
		}, "the run starts when these exist: Secret db"},
	}
	for _, c := range cases {
		q := &qjv1.QuarksJob{ObjectMeta: metav1.ObjectMeta{Name: "q"}}
		c.q(q)
		if got := waitsFor(q); !strings.Contains(got, c.want) {
			t.Errorf("%s: waitsFor = %q; want %q", c.name, got, c.want)
		}
	}
}

func TestAsObjectsMasksValues(t *testing.T) {
	secrets := []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"password": []byte("hunter2")}}}
	masked := asObjects(secrets, false)[0].(*corev1.Secret)
	if v, ok := masked.Data["password"]; !ok || v != nil {
		t.Errorf("masked: %q, key kept %v; want the key with no value", v, ok)
	}
	if string(secrets[0].Data["password"]) != "hunter2" {
		t.Error("masking changed the Secret it was given")
	}
	shown := asObjects(secrets, true)[0].(*corev1.Secret)
	if string(shown.Data["password"]) != "hunter2" || shown.Kind != "Secret" {
		t.Errorf("shown: %+v", shown)
	}
}

func TestWrittenSecrets(t *testing.T) {
	q := &qjv1.QuarksJob{}
	q.Status.LastRun = &qjv1.Run{Number: 4, Uploads: []qjv1.OutputUpload{
		{Pod: "a", Secrets: []qjv1.OutputSecret{{Name: "x-v1"}, {Name: "y"}}, SecretCount: 30},
	}}
	got := strings.Join(writtenSecrets(q, 4), ", ")
	if got != "x-v1, y, and 28 more" {
		t.Errorf("writtenSecrets = %q", got)
	}
	if got := writtenSecrets(q, 3); got != nil {
		t.Errorf("run 3 is no longer recorded, got %v", got)
	}
}

func TestCheckOutputFormat(t *testing.T) {
	for format, ok := range map[string]bool{"": true, "yaml": true, "json": true, "name": true, "bogus": false} {
		flags := newPrintFlags()
		flags.OutputFormat = &format
		err := checkOutputFormat(flags)
		if (err == nil) != ok || (err != nil && ExitCode(err) != ExitCommandFailed) {
			t.Errorf("-o %q: %v", format, err)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if want := "kubectl-qjob " + version.Get().String() + "\n"; out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}
