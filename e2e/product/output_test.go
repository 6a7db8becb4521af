//go:build e2e

package product_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// finishBound is how long a job pod may take from its main container's exit to finishing. The
// persister's grace period is 60 s: a persister that waited for an upload it never gets
// acknowledged would exceed it.
const finishBound = 30 * time.Second

// outputJob is a one-off whose container "work" runs script and declares /mnt/quarks/out.json
// as the Secret "out".
func outputJob(name, script string, writeOnFailure bool) string {
	return outputJobTo(name, "out", script, writeOnFailure)
}

// outputJobTo is outputJob writing the Secret named secret.
func outputJobTo(name, secret, script string, writeOnFailure bool) string {
	return fmt.Sprintf(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: %s
spec:
  trigger:
    strategy: once
  output:
    writeOnFailure: %t
    outputMap:
      work:
        out.json:
          name: %s
  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: work
            image: busybox
            command: ["sh", "-c", %q]
`, name, writeOnFailure, secret, script)
}

// wantPodFinished fails unless the run's single pod had the persister and finished soon after
// its container exited. It logs that time.
func (e *tenv) wantPodFinished(qjob string, run int64, container string) {
	e.t.Helper()
	pod := e.onlyRunPod(qjob, run)
	wantPersister(e.t, pod.pod)
	exited, ok := pod.exited[container]
	if !ok {
		e.t.Fatalf("container %s of pod %s was not seen terminated", container, pod.pod.Name)
	}
	end := pod.finished
	if end.IsZero() {
		end = pod.deletedAt
	}
	if end.IsZero() {
		e.t.Fatalf("pod %s did not finish (phase %s)", pod.pod.Name, pod.pod.Status.Phase)
	}
	took := end.Sub(exited)
	e.t.Logf("figure: container exit → pod finished: %s", ms(took))
	if took > finishBound {
		e.t.Errorf("pod %s finished %s after its container exited, want at most %s: the persister waited", pod.pod.Name, took, finishBound)
	}
}

// testWriteOnFailure: with writeOnFailure the output of a container that exits with 1 or 3 is
// persisted while the run fails; without it, nothing is written.
func testWriteOnFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code           int
		writeOnFailure bool
	}{{1, true}, {3, true}, {1, false}} {
		t.Run(fmt.Sprintf("exit-%d-writeOnFailure-%t", tc.code, tc.writeOnFailure), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "wof", nil)
			script := fmt.Sprintf(`echo '{"code":"%d"}' > /mnt/quarks/out.json; exit %d`, tc.code, tc.code)
			e.apply("qjob", []byte(outputJob("fails", script, tc.writeOnFailure)))
			q := e.waitRunFinished("fails", 1)
			e.wantRun(q, 1, qjv1.RunFailed)
			if tc.writeOnFailure {
				s := e.waitSecret("out")
				wantData(t, s, map[string]string{"code": fmt.Sprint(tc.code)})
				wantLabels(t, "secret out", s.Labels, map[string]string{qjv1.LabelPersistentSecretContainer: "work"})
			} else {
				e.noSecret("out")
			}
			e.wantPodFinished("fails", 1, "work")
			t.Logf("run message: %s", q.Status.LastRun.Message)
		})
	}
}

// testBadOutput: invalid output fails the run with a message naming the file, as status and as
// an Event, and never holds the pod.
func testBadOutput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, script   string
		writeOnFailure bool
		// want are substrings of the run's message.
		want []string
	}{
		{"invalid-json", `printf '{"password": ' > /mnt/quarks/out.json`, false, []string{`"out.json"`}},
		{"non-string-value", `echo '{"password": 42}' > /mnt/quarks/out.json`, false, []string{`"out.json"`}},
		{"nested-object", `echo '{"db": {"password": "x"}}' > /mnt/quarks/out.json`, false, []string{`"out.json"`}},
		{"over-1MiB", `{ printf '{"k":"'; head -c 1100000 /dev/zero | tr '\0' a; printf '"}'; } > /mnt/quarks/out.json`, false, []string{`"out.json"`}},
		{"never-written", `echo not writing`, false, []string{`"out.json"`, "not written"}},
		{"crashed-before-writing", `exit 2`, true, []string{"failed", `"out.json"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "bad", nil)
			e.apply("qjob", []byte(outputJob("bad", tc.script, tc.writeOnFailure)))
			q := e.waitRunFinished("bad", 1)
			e.wantRun(q, 1, qjv1.RunFailed)
			msg := q.Status.LastRun.Message
			t.Logf("run message: %s", msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("run message %q does not contain %q", msg, w)
				}
			}
			e.noSecret("out")
			e.wantPodFinished("bad", 1, "work")
			if events, ok := e.waitEvent("bad", `"out.json"`, 15*time.Second); !ok {
				t.Errorf("no Event of qjob bad names the file out.json: %q", events)
			}
		})
	}
}

// testTwoContainers: of two containers only one declares output; the run completes.
func testTwoContainers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "two", nil)
	e.apply("qjob", []byte(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: two
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      writer:
        out.json:
          name: two-out
  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: writer
            image: busybox
            command: ["sh", "-c", "echo '{\"from\":\"writer\"}' > /mnt/quarks/out.json"]
          - name: other
            image: busybox
            command: ["sh", "-c", "sleep 2; echo other done"]
`))
	q := e.waitRunFinished("two", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	wantData(t, e.secret("two-out"), map[string]string{"from": "writer"})
	pod := e.onlyRunPod("two", 1)
	wantPersister(t, pod.pod)
	for _, c := range pod.pod.Spec.Containers {
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || m.MountPath == "/mnt/quarks"
		}
		if mounted != (c.Name == "writer") {
			t.Errorf("container %s: /mnt/quarks mounted %v, want only in the declaring container", c.Name, mounted)
		}
	}
}

// testRestrictedNamespace: in a namespace enforcing PodSecurity restricted, a restricted job pod
// gets the persister and is admitted.
func testRestrictedNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "restricted", map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	})
	e.apply("qjob", []byte(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: restricted
spec:
  trigger:
    strategy: once
  output:
    outputMap:
      work:
        out.json:
          name: restricted-out
  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          securityContext:
            runAsNonRoot: true
            runAsUser: 1000
            runAsGroup: 1000
            seccompProfile:
              type: RuntimeDefault
          containers:
          - name: work
            image: busybox
            command: ["sh", "-c", "echo '{\"restricted\":\"yes\"}' > /mnt/quarks/out.json"]
            securityContext:
              allowPrivilegeEscalation: false
              capabilities:
                drop: ["ALL"]
`))
	q := e.waitRunFinished("restricted", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	wantData(t, e.secret("restricted-out"), map[string]string{"restricted": "yes"})
	pod := e.onlyRunPod("restricted", 1)
	wantPersister(t, pod.pod)
	if failed := containsAny(e.events("Job", q.Status.LastRun.JobName), "FailedCreate"); failed {
		t.Errorf("the Job's pods were refused at first: %q", e.events("Job", q.Status.LastRun.JobName))
	}
}

// waitEvent waits until an Event about the QuarksJob contains sub; it returns the events seen.
func (e *tenv) waitEvent(name, sub string, timeout time.Duration) ([]string, bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	var events []string
	err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		events = e.events("QuarksJob", name)
		return containsAny(events, sub), ""
	})
	return events, err == nil
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
