package catalog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/outputendpoint/uploadtest"
	"code.cloudfoundry.org/quarks-job/controller/internal/testenv"
)

// outputFile is the file every output case's container declares, and
// outputSecret the Secret it becomes.
const (
	outputFile   = "creds.json"
	outputSecret = "gen-creds"
)

// goodOutput is what the run before each case writes.
const goodOutput = `{"user":"admin","password":"s3cret"}`

// outputCase is a container's output with one thing wrong. Each case runs
// an errand twice: once with good output, which becomes the Secret, then
// with the case's output, which must not change that Secret.
type outputCase struct {
	// input says what is wrong, as the catalog names it.
	input string
	// secret changes how creds.json is persisted (fan-out, versioned).
	secret func(*qjv1.SecretOptions)
	// write puts the container's output into its output directory; stop,
	// when not nil, stops what goes on writing.
	write func(t *testing.T, dir string) (stop func())
	// replaces is the Secret's data when the case's run writes it anew.
	replaces map[string]string
	want     []sighting
}

// ofFile starts every message about creds.json.
const ofFile = `output file "creds.json" of container "gen"`

// notPersisted starts the run's message when its output was refused.
const notPersisted = "the job completed but its output was not persisted: "

// refused is what a user sees of output the persister and the controller
// both refuse: the same message in the persister's log, in the endpoint's
// Event of the reason, and in the run's failure. problem follows the
// file's name: " is empty...", or ": value of key ..." for a key's.
func refused(reason, problem string) []sighting {
	message := ofFile + problem
	return []sighting{{atLog, message}, {atOutputEvent(reason), message}, {atRunFailed, notPersisted + message}}
}

// unwritable is what a user sees of output only the controller can refuse:
// valid JSON that makes no valid Secret.
func unwritable(problem string) []sighting {
	message := ofFile + problem
	return []sighting{{atOutputEvent("InvalidSecret"), message}, {atRunFailed, notPersisted + message}}
}

// content writes creds.json with the content.
func content(c string) func(*testing.T, string) func() {
	return func(t *testing.T, dir string) func() {
		writeFile(t, filepath.Join(dir, outputFile), c)
		return nil
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var outputCases = []outputCase{
	{
		input: "invalid JSON: `{\"user\": \"admin\"` (cut short)",
		write: content(`{"user": "admin"`),
		want:  refused("InvalidOutput", " is not valid JSON: unexpected end of file"),
	},
	{
		input: "not JSON: `user=admin`",
		write: content("user=admin\n"),
		want:  refused("InvalidOutput", " is not valid JSON: invalid character 'u' looking for beginning of value (at byte 1)"),
	},
	{
		input: "a number: `{\"port\": 8080}`",
		write: content(`{"port": 8080}`),
		want:  refused("InvalidOutput", `: value of key "port" is a number; only strings are allowed`),
	},
	{
		input: "a boolean: `{\"tls\": true}`",
		write: content(`{"tls": true}`),
		want:  refused("InvalidOutput", `: value of key "tls" is a boolean; only strings are allowed`),
	},
	{
		input: "null: `{\"password\": null}`",
		write: content(`{"password": null}`),
		want:  refused("InvalidOutput", `: value of key "password" is null; only strings are allowed`),
	},
	{
		input: "an array: `{\"hosts\": [\"a\", \"b\"]}`",
		write: content(`{"hosts": ["a", "b"]}`),
		want:  refused("InvalidOutput", `: value of key "hosts" is an array; only strings are allowed`),
	},
	{
		input: "a nested object: `{\"db\": {\"user\": \"admin\"}}`",
		write: content(`{"db": {"user": "admin"}}`),
		want:  refused("InvalidOutput", `: value of key "db" is a nested object; only strings are allowed`),
	},
	{
		input: "an array at the top: `[\"admin\"]`",
		write: content(`["admin"]`),
		want:  refused("InvalidOutput", ` is an array, not a JSON object; expected {"key": "value", ...}`),
	},
	{
		input: "a key twice: `{\"user\": \"a\", \"user\": \"b\"}`",
		write: content(`{"user": "a", "user": "b"}`),
		want:  refused("InvalidOutput", `: key "user" appears more than once`),
	},
	{
		input: "two objects: `{\"user\": \"a\"} {\"user\": \"b\"}`",
		write: content(`{"user": "a"} {"user": "b"}`),
		want:  refused("InvalidOutput", " has data after the JSON object (at byte 15)"),
	},
	{
		input: "100,000 nested arrays",
		write: content(`{"a": ` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`),
		want:  refused("InvalidOutput", `: value of key "a" is an array; only strings are allowed`),
	},
	{
		input: "binary data (a PNG header)",
		write: content("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
		want:  refused("InvalidOutput", " is not valid UTF-8 (first bad byte at offset 0)"),
	},
	{
		input: "invalid UTF-8 in a value",
		write: content("{\"user\": \"adm\xffin\"}"),
		want:  refused("InvalidOutput", " is not valid UTF-8 (first bad byte at offset 13)"),
	},
	{
		input: "a UTF-8 byte order mark before the object",
		write: content("\ufeff" + goodOutput),
		want:  refused("InvalidOutput", " starts with a UTF-8 byte order mark (EF BB BF), which JSON does not allow; write the file without it"),
	},
	{
		input: "an empty file",
		write: content(""),
		want:  refused("InvalidOutput", " is empty; expected a JSON object of string values"),
	},
	{
		input: "1 MiB + 1 byte",
		write: content(`{"a":"` + strings.Repeat("x", upload.MaxFileBytes+1-len(`{"a":""}`)) + `"}`),
		want:  refused("PersisterReadError", " is 1048577 bytes or more; an output file may hold at most 1048576 bytes (1 MiB, what one Secret holds)"),
	},
	{
		input:    "exactly 1 MiB (the limit)",
		write:    content(`{"a":"` + strings.Repeat("x", upload.MaxFileBytes-len(`{"a":""}`)) + `"}`),
		replaces: map[string]string{"a": strings.Repeat("x", upload.MaxFileBytes-len(`{"a":""}`))},
		want:     []sighting{{atRunOK, "the job completed"}},
	},
	{
		input: "a symbolic link to a file outside the output directory",
		write: func(t *testing.T, dir string) func() {
			outside := filepath.Join(filepath.Dir(dir), "token")
			writeFile(t, outside, "a secret the persister can read")
			if err := os.Symlink(outside, filepath.Join(dir, outputFile)); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		want: refused("PersisterReadError", " is a symbolic link; output files must be regular files"),
	},
	{
		input: "a named pipe",
		write: func(t *testing.T, dir string) func() {
			if err := syscall.Mkfifo(filepath.Join(dir, outputFile), 0o644); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		want: refused("PersisterReadError", " is a named pipe; output files must be regular files"),
	},
	{
		input: "a directory",
		write: func(t *testing.T, dir string) func() {
			if err := os.Mkdir(filepath.Join(dir, outputFile), 0o755); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		want: refused("PersisterReadError", " is a directory; output files must be regular files"),
	},
	{
		input: "a file that keeps growing (still written when the containers exit)",
		write: func(t *testing.T, dir string) func() {
			f, err := os.Create(filepath.Join(dir, outputFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(`{"log": "`); err != nil {
				t.Fatal(err)
			}
			stop, stopped := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(stopped)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						_, _ = f.WriteString("more ")
					}
				}
			}()
			return func() { close(stop); <-stopped; _ = f.Close() }
		},
		want: refused("InvalidOutput", " is not valid JSON: unexpected end of file"),
	},
	{
		input: "no file (the container wrote none)",
		write: func(*testing.T, string) func() { return nil },
		want: []sighting{
			{atLog, ofFile + " was not written"},
			{atOutputEvent("OutputMissing"), ofFile + " was not written (container exited with code 0)"},
			{atRunFailed, notPersisted + ofFile + " was not written (container exited with code 0)"},
		},
	},
	{
		input: "an undeclared file beside the declared one",
		write: func(t *testing.T, dir string) func() {
			writeFile(t, filepath.Join(dir, "extra.json"), `{"debug":"on"}`)
			writeFile(t, filepath.Join(dir, outputFile), `{"user":"root"}`)
			return nil
		},
		replaces: map[string]string{"user": "root"},
		want: []sighting{
			{atLog, `file "extra.json" in the output directory of container "gen" is not declared in output.outputMap; it will not be uploaded`},
			{atRunOK, "the job completed"},
		},
	},
	{
		input: "a key that cannot be a Secret key: `{\"db password\": \"x\"}`",
		write: content(`{"db password": "x"}`),
		want:  unwritable(`: key "db password" cannot be a Secret data key: a valid config key must consist of alphanumeric characters, '-', '_' or '.'…`),
	},
	{
		input: "a key of 300 characters",
		write: content(`{"` + strings.Repeat("k", 300) + `": "x"}`),
		want:  unwritable(`: key "` + strings.Repeat("k", 300) + `" cannot be a Secret data key: must be no more than 253 characters`),
	},
	{
		input:  "fan-out: a key that makes no Secret name: `{\"Admin_User\": \"x\"}`",
		secret: func(s *qjv1.SecretOptions) { s.PersistenceMethod = qjv1.PersistFanOut },
		write:  content(`{"Admin_User": "x"}`),
		want:   unwritable(` (fan-out), key "Admin_User": "gen-creds-Admin_User" is not a valid Secret name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character…`),
	},
	{
		input:  "versioned: invalid JSON (no new version)",
		secret: func(s *qjv1.SecretOptions) { s.Versioned = true },
		write:  content(`{"user": `),
		want:   refused("InvalidOutput", " is not valid JSON: unexpected end of file"),
	},
}

// observe runs the errand with good output, then with the case's, and
// returns what the user sees of the second run.
func (c outputCase) observe(t *testing.T) []sighting {
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	qj := goodQuarksJob()
	qj.Namespace = ns
	qj.Spec.Trigger.Strategy = qjv1.StrategyManual
	if c.secret != nil {
		editCreds(c.secret)(qj)
	}
	if err := k8s.Create(ctx, qj); err != nil {
		t.Fatal(err)
	}

	first := runErrand(ctx, t, ns, 1, content(goodOutput))
	if first.run.Result != qjv1.RunSucceeded {
		t.Fatalf("the run with good output: %s: %s\npersister log:\n%s", first.run.Result, first.run.Message, first.log)
	}
	written := outputSecrets(ctx, t, ns)

	second := runErrand(ctx, t, ns, 2, c.write)
	seen := second.sightings(t)

	// Nothing already written is lost: the Secrets are as the first run
	// left them, unless the case's output was good and replaced them.
	after := outputSecrets(ctx, t, ns)
	if c.replaces == nil {
		if !maps.EqualFunc(after, written, func(a, b *corev1.Secret) bool {
			return a.ResourceVersion == b.ResourceVersion
		}) {
			t.Errorf("the output Secrets changed: before %v, after %v", names(written), names(after))
		}
	} else if got := stringData(after[outputSecret]); !maps.Equal(got, c.replaces) {
		t.Errorf("Secret %s holds %d keys; want the case's output", outputSecret, len(got))
	}
	return seen
}

// outputSecrets are the Secrets of the QuarksJob's output, by name.
func outputSecrets(ctx context.Context, t *testing.T, ns string) map[string]*corev1.Secret {
	t.Helper()
	list := &corev1.SecretList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns), client.HasLabels{qjv1.LabelPersistentSecretContainer}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]*corev1.Secret{}
	for i := range list.Items {
		secrets[list.Items[i].Name] = &list.Items[i]
	}
	return secrets
}

func names(secrets map[string]*corev1.Secret) []string {
	return slices.Sorted(maps.Keys(secrets))
}

func stringData(s *corev1.Secret) map[string]string {
	if s == nil {
		return nil
	}
	data := map[string]string{}
	for k, v := range s.Data {
		data[k] = string(v)
	}
	return data
}

// errand is what one run of the errand left.
type errand struct {
	run    *qjv1.Run
	qjob   *qjv1.QuarksJob
	log    string
	lines  []logLine
	events []eventsv1.Event
}

// logLine is a line of the persister's JSON log.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// runErrand triggers run n of the errand "gen" in ns and plays the parts
// of the Job controller and the kubelet: it creates the run's pod (which
// the webhook injects the persister into), runs the persister binary with
// the environment the webhook gave it, lets write produce the container's
// output, reports the container's exit, stops the persister as the kubelet
// stops a native sidecar, and completes the Job.
func runErrand(ctx context.Context, t *testing.T, ns string, n int64, write func(*testing.T, string) func()) errand {
	t.Helper()
	key := client.ObjectKey{Namespace: ns, Name: "gen"}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"trigger":{"strategy":"now"}}}`))
	if err := k8s.Patch(ctx, &qjv1.QuarksJob{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: ns}}, patch); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{}
	poll(ctx, t, "the run's Job to be resumed", func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("gen-%d", n)}, job); err != nil {
			return err
		}
		if ptr.Deref(job.Spec.Suspend, false) {
			return errors.New("suspended")
		}
		return nil
	})
	pod := podOf(ctx, t, job)

	root := t.TempDir()
	dir := filepath.Join(root, "gen")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	persister := startPersister(ctx, t, pod, root)
	persister.waitFor(t, func(l logLine) bool { return strings.HasPrefix(l.Msg, "watching output files") })
	stopWriting := write(t, dir)
	// The watcher validates a file once it has settled; give it the time
	// to, as a container that runs on would.
	persister.waitFor(t, func(l logLine) bool {
		return strings.Contains(l.Msg, fmt.Sprintf("%q", outputFile)) || strings.Contains(l.Msg, "not declared")
	})

	exited(ctx, t, pod)
	persister.terminate(t)
	if stopWriting != nil {
		stopWriting()
	}
	completeJob(ctx, t, job)

	var qj qjv1.QuarksJob
	poll(ctx, t, "the run to end", func() error {
		if err := k8s.Get(ctx, key, &qj); err != nil {
			return err
		}
		if last := qj.Status.LastRun; last == nil || last.Number != n || last.Result == qjv1.RunRunning {
			return fmt.Errorf("run %d has not ended: %+v", n, last)
		}
		return nil
	})
	result := errand{run: qj.Status.LastRun, qjob: &qj, log: persister.log.String()}
	result.lines = parseLog(t, result.log)
	// The Events of the run's end are recorded after its status.
	end := fmt.Sprintf("run %d ", n)
	poll(ctx, t, "the Event of the run's end", func() error {
		list := &eventsv1.EventList{}
		if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		result.events = list.Items
		for _, e := range list.Items {
			if e.Reason == "RunSucceeded" || e.Reason == "RunFailed" {
				if strings.HasPrefix(e.Note, end) {
					return nil
				}
			}
		}
		return errors.New("not recorded yet")
	})
	return result
}

// sightings are what a user sees of the run: the persister's first word
// on the file, the endpoint's Events, and the run's end.
func (e errand) sightings(t *testing.T) []sighting {
	t.Helper()
	var seen []sighting
	for _, l := range e.lines {
		if (l.Level == "ERROR" || l.Level == "WARN") && (strings.Contains(l.Msg, fmt.Sprintf("%q", outputFile)) || strings.Contains(l.Msg, "not declared")) {
			seen = append(seen, sighting{atLog, l.Msg})
			break
		}
	}

	var problems []string
	for _, u := range e.run.Uploads {
		problems = append(problems, u.Problems...)
	}
	for _, ev := range e.events {
		if ev.Action != "PersistOutput" || ev.Type != corev1.EventTypeWarning {
			continue
		}
		if !slices.Contains(problems, ev.Note) {
			t.Errorf("Event %s says %q; the run's record holds the problems %q", ev.Reason, ev.Note, problems)
		}
		seen = append(seen, sighting{atOutputEvent(ev.Reason), ev.Note})
	}

	done := meta.FindStatusCondition(e.qjob.Status.Conditions, qjv1.ConditionLastRunSucceeded)
	if done == nil {
		t.Fatal("no condition LastRunSucceeded")
	}
	where, reason := atRunOK, "RunSucceeded"
	if done.Status == metav1.ConditionFalse {
		where, reason = atRunFailed, "RunFailed"
	}
	want := fmt.Sprintf("run %d %s: %s", e.run.Number, map[string]string{"RunSucceeded": "succeeded", "RunFailed": "failed"}[reason], done.Message)
	if !slices.ContainsFunc(e.events, func(ev eventsv1.Event) bool { return ev.Reason == reason && ev.Note == want }) {
		t.Errorf("no Event %s saying %q", reason, want)
	}
	return append(seen, sighting{where, done.Message})
}

func parseLog(t *testing.T, log string) []logLine {
	t.Helper()
	var lines []logLine
	scanner := bufio.NewScanner(strings.NewReader(log))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var l logLine
		if err := json.Unmarshal(scanner.Bytes(), &l); err != nil {
			t.Errorf("persister log line is not JSON: %s", scanner.Text())
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// podOf creates the pod of the Job as the Job controller does.
func podOf(ctx context.Context, t *testing.T, job *batchv1.Job) *corev1.Pod {
	t.Helper()
	template := job.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-pod", Namespace: job.Namespace,
			Labels:      template.Labels,
			Annotations: template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: template.Spec,
	}
	// What the ServiceAccount admission plugin sets in a cluster; envtest
	// turns it off, and the projected token needs it.
	pod.Spec.ServiceAccountName = "default"
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatalf("creating the run's pod: %v", err)
	}
	return pod
}

// persisterProcess is the persister binary running for a pod.
type persisterProcess struct {
	cmd    *exec.Cmd
	log    *testenv.Buffer
	exited chan struct{}
}

// startPersister runs the persister as the webhook injected it into the
// pod, with the pod's volumes as directories: root as /mnt/quarks and a
// pod-bound token as its projected token.
func startPersister(ctx context.Context, t *testing.T, pod *corev1.Pod, root string) *persisterProcess {
	t.Helper()
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == upload.PersisterContainerName })
	if i < 0 {
		t.Fatalf("the webhook did not inject the persister into pod %s", pod.Name)
	}
	injected := pod.Spec.InitContainers[i]
	if injected.Image != persisterImage {
		t.Fatalf("the injected persister runs %q", injected.Image)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			Audiences: []string{upload.Audience}, ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef: &authnv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenPath := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenPath, tr.Status.Token)

	env := []string{"QUARKS_JOB_OUTPUT_ROOT=" + root, "QUARKS_JOB_TOKEN_PATH=" + tokenPath, "QUARKS_JOB_LOG_FORMAT=json"}
	for _, e := range injected.Env {
		value := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			value = map[string]string{"metadata.name": pod.Name, "metadata.namespace": pod.Namespace}[e.ValueFrom.FieldRef.FieldPath]
		}
		env = append(env, e.Name+"="+value)
	}
	cmd := exec.Command(persisterBin)
	cmd.Env = env
	p := &persisterProcess{cmd: cmd, log: &testenv.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitFor waits, at most a few seconds, for a log line.
func (p *persisterProcess) waitFor(t *testing.T, line func(logLine) bool) {
	t.Helper()
	_ = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 3*time.Second, true, func(context.Context) (bool, error) {
		for _, l := range parseLog(t, p.log.String()) {
			if line(l) {
				return true, nil
			}
		}
		return false, nil
	})
}

// terminate sends SIGTERM, as the kubelet does to a native sidecar when the
// main containers have exited, and waits for the persister to exit within
// its upload timeout.
func (p *persisterProcess) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("the persister did not exit within 90s of SIGTERM:\n%s", p.log.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the persister exited with %d:\n%s", code, p.log.String())
	}
}

// exited reports the pod's containers as exited with code 0, as the kubelet
// does; the persister, a native sidecar, still runs.
func exited(ctx context.Context, t *testing.T, pod *corev1.Pod) {
	t.Helper()
	fresh := &corev1.Pod{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), fresh); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	for _, c := range fresh.Spec.Containers {
		fresh.Status.ContainerStatuses = append(fresh.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}}})
	}
	for _, c := range fresh.Spec.InitContainers {
		fresh.Status.InitContainerStatuses = append(fresh.Status.InitContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			Started: ptr.To(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	if err := k8s.Status().Update(ctx, fresh); err != nil {
		t.Fatal(err)
	}
}

// completeJob writes the status the Job controller writes when the Job's
// pod succeeded.
func completeJob(ctx context.Context, t *testing.T, job *batchv1.Job) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &batchv1.Job{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), fresh); err != nil {
			return err
		}
		now := metav1.Now()
		start := fresh.CreationTimestamp
		fresh.Status.StartTime = &start
		if err := uploadtest.SucceedJobPod(ctx, k8s, fresh, fresh.Name+"-done"); err != nil {
			return err
		}
		fresh.Status.Succeeded = 1
		fresh.Status.CompletionTime = &now
		fresh.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
		}
		return k8s.Status().Update(ctx, fresh)
	})
	if err != nil {
		t.Fatalf("completing Job %s: %v", job.Name, err)
	}
}

// poll waits until check returns nil, failing the test when ctx ends first.
func poll(ctx context.Context, t *testing.T, what string, check func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		last = check()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, last)
	}
}
