//go:build e2e && release

package product_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// The releases this test makes in its own clone. They are pushed to the local cluster's
// registry only.
const (
	releaseA = "0.98.0"
	releaseB = "0.99.0"
)

// The release suite installs its own releases: TestMain installs nothing.
func init() { suiteInstallsChart = false }

// released is what one release made, read from its digests.txt.
type released struct {
	version string
	// images maps a component (controller, webhook, persister) to repository@digest.
	images map[string]string
	chart  string // oci://<registry>/charts/quarks-job
}

// TestReleaseUpgrade is a user's way through two releases, with the real release tool on a
// clone of this repository: release A (tagged in the clone) is installed from the OCI registry by
// name and version; runs start; release B is made and `helm upgrade` moves to it with a values
// override while the runs are active; every run finishes once, with its output. Then the
// persister is pinned to A's digest under B's controller (version skew, docs/upgrading.md), and a
// run still persists its output.
func TestReleaseUpgrade(t *testing.T) {
	tool := os.Getenv("E2E_RELEASE_TOOL")
	if tool == "" || suite.registry == "" {
		t.Fatal("E2E_RELEASE_TOOL (the release command) and E2E_REGISTRY (the cluster's registry) must be set: make test-e2e-local sets them")
	}
	// No Helm state or credentials of the machine's user.
	home := t.TempDir()
	t.Setenv("HELM_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("HELM_CACHE_HOME", filepath.Join(home, "cache"))
	t.Setenv("HELM_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "docker"))

	clone := filepath.Join(t.TempDir(), "quarks-job")
	git(t, "", "clone", "--quiet", "--no-hardlinks", "../..", clone)
	a := release(t, tool, clone, releaseA)
	// Release B: one more commit, tagged, released. Both are made before the install, so
	// that how long a release takes does not decide whether runs are still active at the
	// upgrade.
	changelog := filepath.Join(clone, "CHANGELOG.md")
	old, err := os.ReadFile(changelog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(changelog, append([]byte("## "+releaseB+" (test release)\n\n"), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, clone, "commit", "--quiet", "-am", "release "+releaseB)
	b := release(t, tool, clone, releaseB)
	for _, component := range []string{"controller", "webhook", "persister"} {
		if digestOf(a.images[component]) == digestOf(b.images[component]) {
			t.Fatalf("releases %s and %s have the same %s image %s: the test could not tell them apart", releaseA, releaseB, component, a.images[component])
		}
	}

	start := time.Now()
	installFromRegistry(t, a, nil)
	t.Logf("figure: helm install %s --version %s → operator ready: %s", a.chart, a.version, ms(time.Since(start)))
	wantRunning(t, a)

	// Runs that are active across the upgrade: their pods run A's persister, and their output
	// reaches B's controller.
	e := newEnv(t, "release", nil)
	active := []string{"across-1", "across-2", "across-3"}
	for _, name := range active {
		e.apply(name, []byte(outputJobTo(name, name, fmt.Sprintf(`sleep 40; echo '{"run":"%s"}' > /mnt/quarks/out.json`, name), false)))
	}
	for _, name := range active {
		e.waitQJob(name, "its run to start", func(q *qjv1.QuarksJob) (bool, string) {
			return q.Status.LastRun != nil, "no run yet"
		})
	}

	for _, name := range active {
		q, err := e.qjob(name)
		if err != nil {
			t.Fatal(err)
		}
		if r := q.Status.LastRun; r == nil || r.Result != qjv1.RunRunning {
			t.Fatalf("%s: run %s before the upgrade, want Running: the upgrade would not meet active runs", name, runString(r))
		}
	}
	start = time.Now()
	upgradeFromRegistry(t, b, []string{"controller.logLevel=debug"})
	t.Logf("figure: helm upgrade to %s while %d runs were active → operator ready: %s", b.version, len(active), ms(time.Since(start)))
	wantRunning(t, b)
	controller := onlyPod(t, "app.kubernetes.io/instance="+releaseName+",app.kubernetes.io/component=controller")
	if !slices.Contains(controller.Spec.Containers[0].Args, "--log-level=debug") {
		t.Errorf("the upgrade's override did not reach the controller: args %v", controller.Spec.Containers[0].Args)
	}
	logs, err := suite.kube.CoreV1().Pods(releaseNS).GetLogs(controller.Name, &corev1.PodLogOptions{}).DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := `"version":"v` + releaseB + `"`; !bytes.Contains(logs, []byte(want)) {
		t.Errorf("the controller's startup log does not say %s:\n%s", want, firstLines(logs, 5))
	}

	// The runs across the upgrade uploaded their output to B's controller.
	for _, name := range active {
		e.waitRunFinished(name, 1)
	}
	logs, err = suite.kube.CoreV1().Pods(releaseNS).GetLogs(controller.Name, &corev1.PodLogOptions{}).DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range active {
		pod := e.onlyRunPod(name, 1).pod
		if !uploadHandled(logs, pod.Namespace+"/"+pod.Name) {
			t.Errorf("release %s's controller did not handle the upload of %s (pod %s), which ran across the upgrade", releaseB, name, pod.Name)
		}
	}

	// A run triggered right after the upgrade, on B.
	e.apply("after", []byte(outputJobTo("after", "after", `echo '{"run":"after"}' > /mnt/quarks/out.json`, false)))
	for _, name := range append(active, "after") {
		q := e.waitRunFinished(name, 1)
		e.wantRun(q, 1, qjv1.RunSucceeded)
		if q.Status.RunCount != 1 {
			t.Errorf("%s: runCount %d after the upgrade, want 1: no run is repeated", name, q.Status.RunCount)
		}
		wantData(t, e.secret(name), map[string]string{"run": name})
	}
	for _, name := range active {
		if got := wantPersister(t, e.onlyRunPod(name, 1).pod).Image; !strings.HasSuffix(got, digestOf(a.images["persister"])) {
			t.Errorf("%s started before the upgrade with persister %s, want A's %s", name, got, a.images["persister"])
		}
	}
	e.staysAtRunCount(active[0], 1)

	// Version skew: B's controller and webhook, A's persister, pinned by digest as
	// docs/upgrading.md says.
	pinnedDigest := strings.TrimPrefix(digestOf(a.images["persister"]), "@")
	upgradeFromRegistry(t, b, []string{"controller.logLevel=debug", "persister.image.digest=" + pinnedDigest})
	e.apply("skew", []byte(outputJobTo("skew", "skew", `echo '{"run":"skew"}' > /mnt/quarks/out.json`, false)))
	q := e.waitRunFinished("skew", 1)
	e.wantRun(q, 1, qjv1.RunSucceeded)
	wantData(t, e.secret("skew"), map[string]string{"run": "skew"})
	if got := wantPersister(t, e.onlyRunPod("skew", 1).pod).Image; !strings.HasSuffix(got, "@"+pinnedDigest) {
		t.Errorf("the run's persister image is %s, want A's %s", got, a.images["persister"])
	}
}

// release makes version in the clone as a maintainer does: tag the modules (make release-tags),
// then run the release tool, pushing to the cluster's registry.
func release(t *testing.T, tool, clone, version string) released {
	t.Helper()
	start := time.Now()
	runIn(t, clone, "make", "--no-print-directory", "release-tags", "VERSION="+version)
	out := filepath.Join(t.TempDir(), version)
	output := runIn(t, clone, tool, "--version", version, "--checkout", clone, "--out", out,
		"--registry", suite.registry, "--source", "https://code.cloudfoundry.org/quarks-job")
	t.Logf("figure: release %s (three images, SBOMs, chart, pushed): %s", version, ms(time.Since(start)))
	t.Logf("release %s:\n%s", version, firstLines(output, 20))
	digests, err := os.ReadFile(filepath.Join(out, "digests.txt"))
	if err != nil {
		t.Fatal(err)
	}
	r := released{version: version, images: map[string]string{}}
	for _, line := range strings.Fields(string(digests)) {
		ref, _, _ := strings.Cut(line, "@")
		name := ref[strings.LastIndex(ref, "/")+1:]
		switch {
		case strings.HasPrefix(line, "oci://"):
			r.chart = strings.TrimSuffix(ref, ":"+version)
		case strings.HasPrefix(name, "quarks-job-webhook:"):
			r.images["webhook"] = stripTag(line)
		case strings.HasPrefix(name, "quarks-job-persister:"):
			r.images["persister"] = stripTag(line)
		case strings.HasPrefix(name, "quarks-job:"):
			r.images["controller"] = stripTag(line)
		}
	}
	if r.chart == "" || len(r.images) != 3 {
		t.Fatalf("digests.txt of %s lists %v and chart %q:\n%s", version, r.images, r.chart, digests)
	}
	return r
}

// stripTag turns repository:tag@digest into repository@digest.
func stripTag(ref string) string {
	name, digest, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name + "@" + digest
}

// uploadHandled reports whether the controller's JSON log has an "upload handled" line of the
// pod (namespace/name).
func uploadHandled(logs []byte, pod string) bool {
	for _, line := range bytes.Split(logs, []byte("\n")) {
		if bytes.Contains(line, []byte(`"msg":"upload handled"`)) && bytes.Contains(line, []byte(`"pod":"`+pod+`"`)) {
			return true
		}
	}
	return false
}

// digestOf is the @sha256:... end of an image reference.
func digestOf(ref string) string {
	_, digest, _ := strings.Cut(ref, "@")
	return "@" + digest
}

// pullFromRegistry finds the chart by name and version, as `helm install oci://... --version`
// does.
func pullFromRegistry(t *testing.T, r released) *chart.Chart {
	t.Helper()
	client, err := registry.NewClient(registry.ClientOptPlainHTTP())
	if err != nil {
		t.Fatal(err)
	}
	pull := action.NewPullWithOpts(action.WithConfig(&action.Configuration{RegistryClient: client}))
	pull.Settings = cli.New()
	pull.Version = r.version
	pull.PlainHTTP = true
	pull.DestDir = t.TempDir()
	if _, err := pull.Run(r.chart); err != nil {
		t.Fatalf("helm pull %s --version %s: %v", r.chart, r.version, err)
	}
	ch, err := loader.Load(filepath.Join(pull.DestDir, "quarks-job-"+r.version+".tgz"))
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Version != r.version || ch.Metadata.AppVersion != "v"+r.version {
		t.Fatalf("%s --version %s is chart %s, appVersion %s", r.chart, r.version, ch.Metadata.Version, ch.Metadata.AppVersion)
	}
	return ch
}

// releaseValues are the suite's values without its image settings: a released chart names its
// own images.
func releaseValues(t *testing.T, extra []string) map[string]any {
	t.Helper()
	var sets []string
	for _, s := range suite.sets {
		if !strings.Contains(s, ".image.") {
			sets = append(sets, s)
		}
	}
	vals, err := parseSets(append(sets, extra...))
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

func installFromRegistry(t *testing.T, r released, extra []string) {
	t.Helper()
	ch := pullFromRegistry(t, r)
	if err := installChart(t.Context(), ch, releaseValues(t, extra)); err != nil {
		t.Fatal(err)
	}
}

func upgradeFromRegistry(t *testing.T, r released, extra []string) {
	t.Helper()
	ch := pullFromRegistry(t, r)
	cfg, err := helmConfig()
	if err != nil {
		t.Fatal(err)
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = releaseNS
	up.Timeout = installTimeout
	if _, err := up.RunWithContext(t.Context(), releaseName, ch, releaseValues(t, extra)); err != nil {
		t.Fatalf("helm upgrade %s %s --version %s: %v", releaseName, r.chart, r.version, err)
	}
	if err := waitUpgraded(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// wantRunning fails unless every pod of the operator runs the release's images, by digest.
func wantRunning(t *testing.T, r released) {
	t.Helper()
	for _, component := range []string{"controller", "webhook"} {
		selector := "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=" + component
		pods, err := suite.kube.CoreV1().Pods(releaseNS).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			t.Errorf("no %s pod", component)
		}
		for _, pod := range pods.Items {
			if got := pod.Spec.Containers[0].Image; !strings.HasSuffix(got, digestOf(r.images[component])) {
				t.Errorf("%s pod %s runs %s, want release %s's %s", component, pod.Name, got, r.version, r.images[component])
			}
		}
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	runIn(t, dir, "git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"}, args...)...)
}

// runIn runs a command in dir and returns its output; it fails the test when the command fails.
func runIn(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.invalid",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
