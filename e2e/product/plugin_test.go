//go:build e2e

package product_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// errand is a manual QuarksJob whose container "main" runs script and whose out.json becomes
// the versioned Secret "<name>-out".
func errand(name, script string) string {
	return fmt.Sprintf(`
apiVersion: quarks.cloudfoundry.org/v1alpha1
kind: QuarksJob
metadata:
  name: %[1]s
spec:
  trigger:
    strategy: manual
  output:
    outputMap:
      main:
        out.json:
          name: %[1]s-out
          versioned: true
  template:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
            command: ["sh", "-c", %[2]q]
`, name, script)
}

// pluginUser is what a user of errands may do in their namespace: read and trigger QuarksJobs,
// read Jobs, pods, their logs and Secrets. Nothing more.
var pluginUser = []rbacv1.PolicyRule{
	{APIGroups: []string{qjv1.GroupName}, Resources: []string{"quarksjobs"}, Verbs: []string{"get", "list", "watch", "patch"}},
	{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}},
}

// testPlugin runs kubectl-qjob as a user with only pluginUser's rights: a run that succeeds, one
// that fails, a timeout, an interrupt, the output, the versions, and a missing right.
func testPlugin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "plugin", nil)
	qjob := pluginBinary(t)
	user := e.kubeconfig("errand-user", pluginUser)
	noSecrets := e.kubeconfig("no-secrets", pluginUser[:3])

	e.apply("hello", []byte(errand("hello",
		`echo "hello from $HOSTNAME"; sleep 2; echo "{\"pod\":\"$HOSTNAME\"}" > /mnt/quarks/out.json`)))
	e.apply("broken", []byte(errand("broken", `echo "about to fail"; echo "boom: no database" >&2; exit 3`)))
	e.apply("slow", []byte(errand("slow", `sleep 600`)))
	e.apply("sleepy", []byte(errand("sleepy", `sleep 600`)))

	t.Run("run that succeeds", func(t *testing.T) {
		for n := int64(1); n <= 2; n++ {
			r := runPlugin(t, qjob, user, "run", "hello", "--logs", "--timeout", "2m")
			r.wantExit(t, 0)
			r.wantOut(t, "[pod/hello-", "/main] hello from hello-", fmt.Sprintf("run %d of quarksjob/hello succeeded", n), "output: hello-out-v")
			r.wantErr(t, "run requested (trigger.strategy=now)")
		}
		e.wantRun(e.waitRunFinished("hello", 2), 2, qjv1.RunSucceeded)
	})

	t.Run("status", func(t *testing.T) {
		r := runPlugin(t, qjob, user, "status", "hello")
		r.wantExit(t, 0)
		r.wantOut(t, "Strategy:", "manual (an errand at rest)", "Waiting for:", "kubectl qjob run hello",
			"RUN", "TRIGGER", "RESULT", "\n2 ", "\n1 ", "Now", "Succeeded")
		r = runPlugin(t, qjob, user, "status", "hello", "-o", "json")
		r.wantExit(t, 0)
		var got qjv1.QuarksJob
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Status.LastRun == nil || got.Status.LastRun.Number != 2 ||
			len(got.Status.PreviousRuns) != 1 || got.Status.PreviousRuns[0].Number != 1 {
			t.Errorf("status -o json: %v; want the QuarksJob with run 2 last and run 1 before it:\n%s", err, r.stdout)
		}
	})

	t.Run("output and versions", func(t *testing.T) {
		v2 := e.secret("hello-out-v2")
		pod := string(v2.Data["pod"])
		r := runPlugin(t, qjob, user, "output", "hello")
		r.wantExit(t, 0)
		r.wantOut(t, "SECRET", "KEYS", "hello-out-v2", "main", "pod")
		r.wantNotOut(t, pod, "hello-out-v1")
		r = runPlugin(t, qjob, user, "output", "hello", "--run", "1", "--show-values")
		r.wantExit(t, 0)
		r.wantOut(t, "secret/hello-out-v1", "pod: hello-1-")
		r = runPlugin(t, qjob, user, "output", "hello", "-o", "yaml")
		r.wantExit(t, 0)
		r.wantOut(t, "kind: Secret", "name: hello-out-v2", "pod: null")
		r.wantNotOut(t, pod)

		r = runPlugin(t, qjob, user, "versions", "hello-out")
		r.wantExit(t, 0)
		r.wantOut(t, "VERSION", "QUARKSJOB", "RUN", "hello-out-v2", "hello-out-v1")
		if v2At, v1At := strings.Index(r.stdout, "hello-out-v2"), strings.Index(r.stdout, "hello-out-v1"); v2At > v1At {
			t.Errorf("versions lists v1 before v2; want the newest first:\n%s", r.stdout)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if f := strings.Fields(line); len(f) >= 4 && strings.HasPrefix(f[0], "hello-out-v") && (f[2] != "hello" || "hello-out-v"+f[3] != f[0]) {
				t.Errorf("versions: %q; want QuarksJob hello and the run that wrote the version", line)
			}
		}
	})

	t.Run("run that fails", func(t *testing.T) {
		r := runPlugin(t, qjob, user, "run", "broken", "--wait", "--timeout", "2m")
		r.wantExit(t, 1)
		r.wantOut(t, "run 1 of quarksjob/broken failed", "exited with code 3", "boom: no database", "about to fail")
		e.wantRun(e.waitRunFinished("broken", 1), 1, qjv1.RunFailed)
	})

	t.Run("timeout", func(t *testing.T) {
		r := runPlugin(t, qjob, user, "run", "slow", "--wait", "--timeout", "5s")
		r.wantExit(t, 3)
		r.wantErr(t, "timed out after 5s", "it goes on", "kubectl qjob status slow")
		q, err := e.qjob("slow")
		if err != nil {
			t.Fatal(err)
		}
		if request, _, _ := qjv1.RunRequestOf(q.Annotations); request.Run != 1 || (q.Status.LastRun != nil && q.Status.LastRun.Result != qjv1.RunRunning) {
			t.Errorf("after the timeout: run %d requested, last run %s; want run 1 requested and not ended", request.Run, runString(q.Status.LastRun))
		}
	})

	t.Run("interrupt", func(t *testing.T) {
		cmd, stdout, stderr := pluginCommand(qjob, user, "run", "sleepy", "--wait")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		e.waitQJob("sleepy", "run 1 running", func(q *qjv1.QuarksJob) (bool, string) {
			r := q.Status.LastRun
			return r != nil && r.Number == 1 && r.Result == qjv1.RunRunning, runString(r)
		})
		waitFor(t, "the plugin to report the run running", func() bool { return strings.Contains(stderr.String(), "run 1: running") })
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		r := finished(cmd, stdout, stderr)
		t.Logf("kubectl qjob %s, interrupted → exit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
		r.wantExit(t, 130)
		r.wantErr(t, "interrupted; run 1 of quarksjob/sleepy goes on", "kubectl qjob status sleepy", "kubectl logs -n "+e.namespace+" -f")
		if q, err := e.qjob("sleepy"); err != nil || q.Status.LastRun == nil || q.Status.LastRun.Result != qjv1.RunRunning {
			t.Errorf("after the interrupt: %v; want run 1 still Running", err)
		}
	})

	t.Run("a missing right is named", func(t *testing.T) {
		r := runPlugin(t, qjob, noSecrets, "output", "hello")
		r.wantExit(t, 2)
		r.wantErr(t, fmt.Sprintf("you may not list secrets in namespace %q", e.namespace), "kubectl auth can-i list secrets")
		r = runPlugin(t, qjob, user, "status", "nonexistent")
		r.wantExit(t, 2)
		r.wantErr(t, `quarksjob "nonexistent" not found`)
	})

	t.Run("as kubectl's plugin", func(t *testing.T) {
		kubectl := os.Getenv("KUBECTL")
		if kubectl == "" {
			kubectl = "kubectl"
		}
		if _, err := exec.LookPath(kubectl); err != nil {
			t.Fatalf("kubectl not found (set KUBECTL): %v", err)
		}
		cmd := exec.Command(kubectl, "qjob", "status", "hello")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+user, "PATH="+filepath.Dir(qjob)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Last run:      2, Succeeded") {
			t.Errorf("kubectl qjob status hello: %v\n%s", err, out)
		}
		// kubectl's completion of "kubectl qjob status h" asks the plugin.
		cmd = exec.Command(kubectl, "__complete", "qjob", "status", "h")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+user, "PATH="+filepath.Dir(qjob)+string(os.PathListSeparator)+os.Getenv("PATH"))
		if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), "hello\n") {
			t.Errorf("kubectl __complete qjob status h: %v\n%s", err, out)
		}
		r := runPlugin(t, qjob, user, "--help")
		r.wantExit(t, 0)
		r.wantOut(t, "Usage:\n  kubectl qjob [command]", "Examples:", "run ", "status ", "output ", "versions ", "--namespace", "--context")
	})

	t.Run("completion", func(t *testing.T) {
		r := runPlugin(t, qjob, user, "__complete", "status", "h")
		r.wantExit(t, 0)
		r.wantOut(t, "hello\n")
		r.wantNotOut(t, "broken")
		r = runPlugin(t, qjob, user, "__complete", "versions", "")
		r.wantOut(t, "hello-out\n")
		r.wantNotOut(t, "broken-out") // run 1 of broken failed: nothing was written
	})
}

var plugin struct {
	once sync.Once
	path string
	err  error
}

// pluginBinary installs kubectl-qjob from this checkout with make install-plugin into a
// directory of its own, once per suite.
func pluginBinary(t *testing.T) string {
	plugin.once.Do(func() {
		dir, err := os.MkdirTemp("", "kubectl-qjob-")
		if err != nil {
			plugin.err = err
			return
		}
		plugin.path = filepath.Join(dir, "kubectl-qjob")
		out, err := exec.Command("make", "-C", "../..", "install-plugin", "PLUGIN_DIR="+dir).CombinedOutput()
		if err != nil {
			plugin.err = fmt.Errorf("make install-plugin: %w\n%s", err, out)
		}
	})
	if plugin.err != nil {
		t.Fatal(plugin.err)
	}
	return plugin.path
}

// kubeconfig writes a kubeconfig that acts as a new service account with rules, in the test's
// namespace by default, as a user's kubeconfig would.
func (e *tenv) kubeconfig(name string, rules []rbacv1.PolicyRule) string {
	e.t.Helper()
	cfg := e.serviceAccount(name, rules)
	return writeKubeconfig(e.t, cfg, e.namespace)
}

func writeKubeconfig(t testing.TB, cfg *rest.Config, namespace string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData,
		CertificateAuthority: cfg.CAFile, TLSServerName: cfg.ServerName}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["user"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user", Namespace: namespace}
	kc.CurrentContext = "user"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// pluginResult is what one kubectl-qjob invocation printed and its exit code.
type pluginResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func pluginCommand(binary, kubeconfig string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd, stdout, stderr
}

func runPlugin(t *testing.T, binary, kubeconfig string, args ...string) pluginResult {
	t.Helper()
	cmd, stdout, stderr := pluginCommand(binary, kubeconfig, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A command that hangs is killed: its output then says where it stood.
	timer := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	r := finished(cmd, stdout, stderr)
	t.Logf("kubectl qjob %s → exit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func finished(cmd *exec.Cmd, stdout, stderr *syncBuffer) pluginResult {
	err := cmd.Wait()
	r := pluginResult{args: cmd.Args[1:], stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.code = -1
		r.stderr += err.Error()
	}
	return r
}

func (r pluginResult) wantExit(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("kubectl qjob %s exited with %d; want %d\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, code, r.stdout, r.stderr)
	}
}

func (r pluginResult) wantOut(t *testing.T, parts ...string) {
	t.Helper()
	wantIn(t, r, "stdout", r.stdout, parts)
}

func (r pluginResult) wantErr(t *testing.T, parts ...string) {
	t.Helper()
	wantIn(t, r, "stderr", r.stderr, parts)
}

func wantIn(t *testing.T, r pluginResult, stream, text string, parts []string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("kubectl qjob %s: %s lacks %q:\n%s", strings.Join(r.args, " "), stream, p, text)
		}
	}
}

func (r pluginResult) wantNotOut(t *testing.T, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(r.stdout, p) {
			t.Errorf("kubectl qjob %s: stdout shows %q:\n%s", strings.Join(r.args, " "), p, r.stdout)
		}
	}
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits up to runTimeout for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	if err := poll(ctx, 100*time.Millisecond, func() (bool, string) { return cond(), "" }); err != nil {
		t.Fatalf("waited %s for %s: %v", runTimeout, what, err)
	}
}
