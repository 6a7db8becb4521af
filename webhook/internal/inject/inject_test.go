package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

var testCA = []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Image = "registry.example/quarks-job-persister:1.0"
	cfg.Endpoint = "https://quarks-job-output.quarks.svc:8443"
	return cfg
}

func jobPod(outputFiles string, containers ...string) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "gen-run-1-abcde", Namespace: "ns",
		Labels: map[string]string{qjv1.LabelQJobName: "gen"},
	}}
	if outputFiles != "" {
		pod.Annotations = map[string]string{qjv1.AnnotationOutputFiles: outputFiles}
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	return pod
}

func inject(t *testing.T, pod *corev1.Pod, cfg Config) error {
	t.Helper()
	files, ok, err := OutputFiles(pod)
	if err != nil {
		return err
	}
	if !ok {
		t.Fatalf("pod declares no output")
	}
	return Inject(pod, files, pod.Annotations[qjv1.AnnotationOutputFiles], testCA, cfg)
}

func TestInjectDeclaringContainers(t *testing.T) {
	pod := jobPod(`{"gen":["a.json","b.json"]}`, "gen", "other")
	if err := inject(t, pod, testConfig()); err != nil {
		t.Fatal(err)
	}

	wantVolume := upload.OutputVolumePrefix + "gen"
	if got := volumeNames(pod); !equalStrings(got, []string{wantVolume, upload.TokenVolumeName}) {
		t.Errorf("volumes = %v, want %v and the token volume", got, wantVolume)
	}
	if m := pod.Spec.Containers[0].VolumeMounts; len(m) != 1 || m[0].Name != wantVolume || m[0].MountPath != upload.OutputRoot {
		t.Errorf("container gen mounts %+v, want %s at %s", m, wantVolume, upload.OutputRoot)
	}
	if m := pod.Spec.Containers[1].VolumeMounts; len(m) != 0 {
		t.Errorf("container other declares no output but mounts %+v", m)
	}

	if len(pod.Spec.InitContainers) != 1 {
		t.Fatalf("init containers = %d, want the persister only", len(pod.Spec.InitContainers))
	}
	p := pod.Spec.InitContainers[0]
	if p.Name != upload.PersisterContainerName || p.Image != testConfig().Image {
		t.Errorf("persister = %s %s", p.Name, p.Image)
	}
	if p.RestartPolicy == nil || *p.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("persister is not a native sidecar: restartPolicy %v", p.RestartPolicy)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range p.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m, ok := mounts[upload.OutputRoot+"/gen"]; !ok || m.Name != wantVolume || !m.ReadOnly {
		t.Errorf("persister mounts %+v, want %s read-only at %s/gen", p.VolumeMounts, wantVolume, upload.OutputRoot)
	}
	if m, ok := mounts["/var/run/secrets/quarks-job"]; !ok || m.Name != upload.TokenVolumeName {
		t.Errorf("persister mounts %+v, want the token volume at the directory of %s", p.VolumeMounts, upload.TokenPath)
	}

	env := map[string]corev1.EnvVar{}
	for _, e := range p.Env {
		env[e.Name] = e
	}
	for name, want := range map[string]string{
		upload.EnvEndpoint:      testConfig().Endpoint,
		upload.EnvCABundle:      string(testCA),
		upload.EnvOutputFiles:   `{"gen":["a.json","b.json"]}`,
		upload.EnvUploadTimeout: "54s",
	} {
		if env[name].Value != want {
			t.Errorf("env %s = %q, want %q", name, env[name].Value, want)
		}
	}
	for name, field := range map[string]string{upload.EnvPodName: "metadata.name", upload.EnvPodNamespace: "metadata.namespace"} {
		if e := env[name]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("env %s = %+v, want the downward API field %s", name, e, field)
		}
	}

	token := pod.Spec.Volumes[1].Projected
	if token == nil || len(token.Sources) != 1 || token.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("token volume = %+v, want a projected service-account token", pod.Spec.Volumes[1])
	}
	if sat := token.Sources[0].ServiceAccountToken; sat.Audience != upload.Audience || sat.Path != "token" || *sat.ExpirationSeconds != 3600 {
		t.Errorf("token = %+v, want audience %s, path token, 3600 s", sat, upload.Audience)
	}

	sc := p.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("persister security context is not restricted: %+v", sc)
	}
	if p.Resources.Requests.Memory().IsZero() || p.Resources.Limits.Memory().IsZero() {
		t.Errorf("persister resources = %+v, want requests and limits", p.Resources)
	}
}

func TestInjectIsAFixpoint(t *testing.T) {
	pod := jobPod(`{"a":["x"],"b":["y"]}`, "a", "b", "c")
	pod.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox"}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "config"}}
	if err := inject(t, pod, testConfig()); err != nil {
		t.Fatal(err)
	}
	once := pod.DeepCopy()
	if err := inject(t, pod, testConfig()); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(once, pod) {
		t.Errorf("injecting again changed the pod:\nonce:  %+v\ntwice: %+v", once.Spec, pod.Spec)
	}
	if got := pod.Spec.InitContainers[0].Name; got != "setup" {
		t.Errorf("first init container = %s, want the user's setup", got)
	}
	if got := volumeNames(pod); len(got) != 4 {
		t.Errorf("volumes = %v, want config, two output volumes and the token", got)
	}
}

func TestInjectGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace *int64
		want  int64
	}{
		{"unset gets the minimum", nil, 60},
		{"shorter is raised", ptr.To[int64](10), 60},
		{"longer is kept", ptr.To[int64](600), 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := jobPod(`{"gen":["a"]}`, "gen")
			pod.Spec.TerminationGracePeriodSeconds = tc.grace
			if err := inject(t, pod, testConfig()); err != nil {
				t.Fatal(err)
			}
			if got := *pod.Spec.TerminationGracePeriodSeconds; got != tc.want {
				t.Errorf("terminationGracePeriodSeconds = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestUploadTimeout(t *testing.T) {
	for grace, want := range map[int64]string{60: "54s", 30: "25s", 600: "540s", 6: "3s"} {
		if got := UploadTimeout(grace); got != want {
			t.Errorf("UploadTimeout(%d) = %s, want %s", grace, got, want)
		}
	}
}

func TestInjectRejectsConflicts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pod     func() *corev1.Pod
		wantErr string
	}{
		{"undeclared container", func() *corev1.Pod { return jobPod(`{"missing":["a"]}`, "gen") },
			`container "missing", which is not in spec.containers`},
		{"container with the persister's name", func() *corev1.Pod { return jobPod(`{"gen":["a"]}`, "gen", upload.PersisterContainerName) },
			`spec.containers: container name "output-persist" is reserved`},
		{"user mount at the output root", func() *corev1.Pod {
			pod := jobPod(`{"gen":["a"]}`, "gen")
			pod.Spec.Volumes = []corev1.Volume{{Name: "mine"}}
			pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mine", MountPath: "/mnt/quarks/"}}
			return pod
		}, `container "gen" mounts volume "mine" at "/mnt/quarks/"`},
		{"user volume with the reserved prefix", func() *corev1.Pod {
			pod := jobPod(`{"gen":["a"]}`, "gen")
			pod.Spec.Volumes = []corev1.Volume{{Name: "quarks-job-mine"}}
			return pod
		}, `spec.volumes: volume name "quarks-job-mine" uses the prefix "quarks-job-"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := inject(t, tc.pod(), testConfig())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestOutputFiles(t *testing.T) {
	for _, tc := range []struct {
		name       string
		annotation string
		wantOK     bool
		wantErr    string
	}{
		{"absent", "", false, ""},
		{"empty object", "{}", false, ""},
		{"declared", `{"gen":["a.json"]}`, true, ""},
		{"not JSON", `gen=a.json`, false, "annotation quarks.cloudfoundry.org/output-files is not a JSON object"},
		{"path in a file name", `{"gen":["../etc/passwd"]}`, false, `container "gen": output file name "../etc/passwd" must be a plain file name`},
		{"dot-dot", `{"gen":[".."]}`, false, `output file name ".." is not a file name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := OutputFiles(jobPod(tc.annotation, "gen"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.wantOK {
				t.Errorf("ok, err = %v, %v; want %v, nil", ok, err, tc.wantOK)
			}
		})
	}
}

func TestOutputVolumeName(t *testing.T) {
	long1 := strings.Repeat("a", 63)
	long2 := strings.Repeat("a", 62) + "b"
	names := map[string]bool{}
	for _, container := range []string{"gen", strings.Repeat("c", 45), strings.Repeat("c", 46), long1, long2, strings.Repeat("a", 33) + "-" + strings.Repeat("z", 29)} {
		name := OutputVolumeName(container)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("OutputVolumeName(%q) = %q is no valid volume name: %v", container, name, errs)
		}
		if !strings.HasPrefix(name, upload.OutputVolumePrefix) {
			t.Errorf("OutputVolumeName(%q) = %q lacks the prefix %s", container, name, upload.OutputVolumePrefix)
		}
		if names[name] {
			t.Errorf("OutputVolumeName(%q) = %q repeats another container's name", container, name)
		}
		names[name] = true
	}
	if got := OutputVolumeName("gen"); got != "quarks-job-output-gen" {
		t.Errorf("short names are kept readable: got %q", got)
	}
}

func volumeNames(pod *corev1.Pod) []string {
	var names []string
	for _, v := range pod.Spec.Volumes {
		names = append(names, v.Name)
	}
	return names
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestInjectImagePullSecrets(t *testing.T) {
	cfg := testConfig()
	cfg.ImagePullSecrets = []string{"registry-creds", "mirror-creds"}
	pod := jobPod(`{"a":["x"]}`, "a")
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "mirror-creds"}, {Name: "users-own"}}
	for range 2 {
		if err := inject(t, pod, cfg); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		got = append(got, ref.Name)
	}
	if strings.Join(got, ",") != "mirror-creds,users-own,registry-creds" {
		t.Errorf("imagePullSecrets = %v; want the user's kept and each configured one once", got)
	}
}
