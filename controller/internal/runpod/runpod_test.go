package runpod

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

const persisterImage = "quarks/persister:1.2.0"

// job is a run's Job whose template runs "gen", writing output, with a
// ConfigMap volume.
func job() *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "vic-1", Namespace: "ns", UID: "job-uid"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "gen", Image: "busybox", Command: []string{"sh", "-c", "echo '{}' > /mnt/quarks/out.json"},
				Env:             []corev1.EnvVar{{Name: "MODE", Value: "prod"}},
				VolumeMounts:    []corev1.VolumeMount{{Name: "config", MountPath: "/config"}},
				ImagePullPolicy: corev1.PullAlways, TerminationMessagePath: corev1.TerminationMessagePathDefault,
			}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}},
			DNSPolicy: corev1.DNSClusterFirst, SchedulerName: "default-scheduler", SecurityContext: &corev1.PodSecurityContext{},
		}}},
	}
}

// pod is what the Job controller, the webhook, the ServiceAccount
// admission, the scheduler and the kubelet make of j's template.
func pod(j *batchv1.Job) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: j.Name + "-abcde", Namespace: j.Namespace, UID: "pod-uid",
			Labels:          map[string]string{batchv1.ControllerUidLabel: string(j.UID), batchv1.JobNameLabel: j.Name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID, Controller: ptr.To(true)}},
			Finalizers:      []string{batchv1.JobTrackingFinalizer},
		},
		Spec: *j.Spec.Template.Spec.DeepCopy(),
	}
	s := &p.Spec
	// The webhook.
	out := upload.OutputVolumeName("gen")
	s.Volumes = append(s.Volumes,
		corev1.Volume{Name: out, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: upload.TokenVolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: upload.Audience, Path: "token"}}}}}})
	s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: out, MountPath: upload.OutputRoot})
	s.InitContainers = append(s.InitContainers, corev1.Container{
		Name: upload.PersisterContainerName, Image: persisterImage, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Env: []corev1.EnvVar{{Name: upload.EnvEndpoint, Value: "https://quarks-job-output.quarks-job.svc"}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: upload.TokenVolumeName, MountPath: "/var/run/secrets/quarks-job", ReadOnly: true},
			{Name: out, MountPath: upload.OutputRoot + "/gen", ReadOnly: true},
		},
	})
	s.TerminationGracePeriodSeconds = ptr.To[int64](60)
	// The ServiceAccount admission.
	s.ServiceAccountName, s.DeprecatedServiceAccount = "default", "default"
	s.Volumes = append(s.Volumes, corev1.Volume{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3607), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		}}}})
	for _, cs := range []([]corev1.Container){s.InitContainers, s.Containers} {
		for i := range cs {
			cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: "kube-api-access-x7k2p", MountPath: serviceAccountMountPath, ReadOnly: true})
		}
	}
	// Admission, the scheduler and LimitRange.
	s.Priority, s.PreemptionPolicy = ptr.To[int32](0), ptr.To(corev1.PreemptLowerPriority)
	s.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)}}
	s.NodeName = "node-1"
	s.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	// The kubelet.
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: upload.PersisterContainerName, Image: "docker.io/quarks/persister:1.2.0", ImageID: "docker.io/quarks/persister@sha256:1111111111111111111111111111111111111111111111111111111111111111"}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "gen", Image: "docker.io/library/busybox:latest", ImageID: "docker.io/library/busybox@sha256:2222222222222222222222222222222222222222222222222222222222222222"}}
	return p
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		change func(j *batchv1.Job, p *corev1.Pod)
		want   string // a part of the refusal; "" for a pod of the run
	}{
		{"the Job controller's pod", func(*batchv1.Job, *corev1.Pod) {}, ""},
		{"a persister of another tag (an upgrade)", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.InitContainers[0].Image = "quarks/persister:1.1.0"
			p.Status.InitContainerStatuses[0].Image = "docker.io/quarks/persister:1.1.0"
		}, ""},
		{"a persister pinned by digest, reported by its image ID", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.InitContainers[0].Image = "quarks/persister:1.0.0@sha256:4444444444444444444444444444444444444444444444444444444444444444"
			p.Status.InitContainerStatuses[0].Image = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
			p.Status.InitContainerStatuses[0].ImageID = "docker.io/quarks/persister@sha256:4444444444444444444444444444444444444444444444444444444444444444"
		}, ""},
		{"containers not yet reported", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Status.ContainerStatuses, p.Status.InitContainerStatuses = nil, nil
		}, ""},
		{"an Indexed Job's completion index (Kubernetes 1.37: label)", func(j *batchv1.Job, p *corev1.Pod) {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
			p.Spec.Hostname = "vic-1-0"
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels['batch.kubernetes.io/job-completion-index']"}}})
		}, ""},
		{"an Indexed Job's completion index (before 1.37: annotation)", func(j *batchv1.Job, p *corev1.Pod) {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
			p.Spec.Hostname = "vic-1-0"
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}})
		}, ""},
		{"a completion index from another field", func(j *batchv1.Job, p *corev1.Pod) {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tenant']"}}})
		}, "env differs"},
		{"an image digest that ran", func(j *batchv1.Job, p *corev1.Pod) {
			d := "busybox@sha256:2222222222222222222222222222222222222222222222222222222222222222"
			j.Spec.Template.Spec.Containers[0].Image, p.Spec.Containers[0].Image = d, d
			p.Status.ContainerStatuses[0].Image = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
		}, ""},

		{"no controller reference to the Job", func(_ *batchv1.Job, p *corev1.Pod) { p.OwnerReferences = nil }, "not controlled by the run's Job"},
		{"another Job's UID label", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Labels[batchv1.ControllerUidLabel] = "other"
		}, "not the Job's UID"},
		{"an image changed back after it ran", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Status.ContainerStatuses[0].Image = "docker.io/tenant/printer:latest"
		}, `container "gen" ran image "docker.io/tenant/printer:latest"`},
		{"another image", func(_ *batchv1.Job, p *corev1.Pod) { p.Spec.Containers[0].Image = "tenant/printer" }, `names image "tenant/printer"`},
		{"another command", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.Containers[0].Command = []string{"sh", "-c", "echo '{\"owner\":\"tenant\"}' > /mnt/quarks/out.json"}
		}, "command differs"},
		{"another env", func(_ *batchv1.Job, p *corev1.Pod) { p.Spec.Containers[0].Env[0].Value = "tenant" }, "env differs"},
		{"the template's volume from another ConfigMap", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.Volumes[0].ConfigMap.Name = "tenant-cfg"
		}, `volume "config" is not the Job template's`},
		{"a volume of its own", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "extra", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}, `volume "extra" is not in the Job's template`},
		{"a template volume missing", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.Volumes = p.Spec.Volumes[1:]
			p.Spec.Containers[0].VolumeMounts = p.Spec.Containers[0].VolumeMounts[1:]
		}, "of the Job template's 1 volumes"},
		{"an output volume from a ConfigMap", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.Volumes[1].VolumeSource = corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "tenant"}}}
		}, "is not an empty directory"},
		{"a service-account volume with another Secret", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.Volumes[3].Projected.Sources[1].ConfigMap.Name = "tenant"
		}, "is not the service account's token"},
		{"the persister's output mount at another container's directory", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.InitContainers[0].VolumeMounts[1].MountPath = upload.OutputRoot + "/other"
		}, "its persister mounts volume"},
		{"a persister with a command", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.InitContainers[0].Command = []string{"/bin/sh"}
		}, "persister does not run as the webhook injects it"},
		{"another uploader", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.InitContainers[0].Image = "tenant/uploader"
		}, "its persister runs image"},
		{"an uploader reported by its image ID", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Status.InitContainerStatuses[0].Image = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
			p.Status.InitContainerStatuses[0].ImageID = "docker.io/tenant/uploader@sha256:4444444444444444444444444444444444444444444444444444444444444444"
		}, `container "output-persist" ran image`},
		{"an uploader that ran instead of the persister", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Status.InitContainerStatuses[0].Image = "docker.io/tenant/uploader:latest"
		}, `container "output-persist" ran image`},
		{"a mount the template lacks", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "config", MountPath: "/etc/other"})
		}, `mounts volume "config" at "/etc/other"`},
		{"another service account", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.ServiceAccountName, p.Spec.DeprecatedServiceAccount = "tenant", "tenant"
		}, "spec.serviceAccountName differs"},
		{"host aliases", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.HostAliases = []corev1.HostAlias{{IP: "10.0.0.9", Hostnames: []string{"config.example"}}}
		}, "spec.hostAliases differs"},
		{"an ephemeral container", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
		}, `ephemeral container "debug"`},
		{"an init container of its own", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Spec.InitContainers = append([]corev1.Container{{Name: "seed", Image: "busybox"}}, p.Spec.InitContainers...)
		}, "it has 1 init containers"},
		{"a status of a container the spec lacks", func(_ *batchv1.Job, p *corev1.Pod) {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "ghost", Image: "busybox"})
		}, `container "ghost"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := job()
			p := pod(j)
			tt.change(j, p)
			got := Check(p, j, persisterImage)
			switch {
			case tt.want == "" && got != "":
				t.Fatalf("Check refused the run's pod: %s", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Fatalf("Check = %q, want a refusal containing %q", got, tt.want)
			}
		})
	}
}

func TestSameImage(t *testing.T) {
	tests := []struct {
		image, imageID, spec string
		want                 bool
	}{
		{"docker.io/library/busybox:latest", "", "busybox", true},
		{"docker.io/library/busybox:latest", "", "busybox:latest", true},
		{"docker.io/library/busybox:1.36", "", "busybox", false},
		{"registry.local:5000/tools/gen:v1", "", "registry.local:5000/tools/gen:v1", true},
		{"docker.io/tenant/gen:v1", "", "registry.local:5000/tools/gen:v1", false},
		{"sha256:aaaa", "docker.io/library/busybox@sha256:" + strings.Repeat("b", 64), "busybox@sha256:" + strings.Repeat("b", 64), true},
		{"sha256:aaaa", "docker.io/library/busybox@sha256:" + strings.Repeat("c", 64), "busybox@sha256:" + strings.Repeat("b", 64), false},
		{"sha256:aaaa", "", "busybox", false},
	}
	for _, tt := range tests {
		if got := SameImage(tt.image, tt.imageID, tt.spec); got != tt.want {
			t.Errorf("SameImage(%q, %q, %q) = %v, want %v", tt.image, tt.imageID, tt.spec, got, tt.want)
		}
	}
}

func TestSameRepository(t *testing.T) {
	for image, want := range map[string]string{
		"docker.io/cfcontainerization/quarks-job-persister:dev":          "docker.io/cfcontainerization/quarks-job-persister",
		"docker.io/cfcontainerization/quarks-job-persister@sha256:aa":    "docker.io/cfcontainerization/quarks-job-persister",
		"docker.io/cfcontainerization/quarks-job-persister:v1@sha256:aa": "docker.io/cfcontainerization/quarks-job-persister",
		"127.0.0.1:5050/persister":                                       "127.0.0.1:5050/persister",
		"127.0.0.1:5050/persister:e2e-pinned":                            "127.0.0.1:5050/persister",
		"persister":                                                      "persister",
	} {
		if got := imageRepository(image); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", image, got, want)
		}
		if !sameRepository(image, want) || sameRepository(image, want+"-other") {
			t.Errorf("sameRepository(%q, %q) is wrong", image, want)
		}
	}
}
