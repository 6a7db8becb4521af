// Package inject adds the output persister to QuarksJob pods: a native
// sidecar, one output volume per container that declares output, and a
// projected service-account token the controller's output endpoint accepts.
//
// Inject is pure and a fixpoint: injecting an injected pod changes nothing.
package inject

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// Config is what the webhook's configuration decides about the persister.
type Config struct {
	// Image of the persister.
	Image string
	// ImagePullPolicy of the persister.
	ImagePullPolicy corev1.PullPolicy
	// ImagePullSecrets are added to the pod, so that a persister image from
	// a private registry can be pulled in every job namespace.
	ImagePullSecrets []string
	// Endpoint is the URL of the controller's output endpoint, passed to the
	// persister verbatim.
	Endpoint string
	// Resources of the persister.
	Resources corev1.ResourceRequirements
	// RunAsUser and RunAsGroup of the persister; never 0.
	RunAsUser  int64
	RunAsGroup int64
	// MinGracePeriodSeconds is the least terminationGracePeriodSeconds an
	// injected pod gets, so the persister has time to upload. A larger value
	// of the user's is kept.
	MinGracePeriodSeconds int64
	// TokenExpirationSeconds of the persister's projected token (at least 600).
	TokenExpirationSeconds int64
}

// DefaultConfig returns the defaults the webhook's flags start from.
func DefaultConfig() Config {
	return Config{
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("200m"),
				corev1.ResourceMemory: resource.MustParse("128Mi"),
			},
		},
		RunAsUser:              65532,
		RunAsGroup:             65532,
		MinGracePeriodSeconds:  60,
		TokenExpirationSeconds: 3600,
	}
}

// tokenMountDir is where the projected token volume is mounted in the
// persister; the token file is its base name.
var tokenMountDir, tokenFile = path.Split(upload.TokenPath)

// OutputFiles reads the pod's output-files annotation: container → declared
// file names. ok is false when the pod declares no output.
func OutputFiles(pod *corev1.Pod) (files map[string][]string, ok bool, err error) {
	raw, found := pod.Annotations[qjv1.AnnotationOutputFiles]
	if !found {
		return nil, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &files); err != nil {
		return nil, false, fmt.Errorf("annotation %s is not a JSON object of container name to file names: %w", qjv1.AnnotationOutputFiles, err)
	}
	for container, names := range files {
		for _, name := range names {
			if err := upload.CheckFileName(name); err != nil {
				return nil, false, fmt.Errorf("annotation %s: container %q: %w", qjv1.AnnotationOutputFiles, container, err)
			}
		}
	}
	return files, len(files) > 0, nil
}

// OutputVolumeName is the name of the output volume of a container
// (upload.OutputVolumeName: the controller checks run pods against it).
func OutputVolumeName(container string) string { return upload.OutputVolumeName(container) }

// Inject adds the persister to the pod for the declared output files (as
// read by OutputFiles; rawFiles is the annotation's value, passed to the
// persister verbatim). It fails, naming the conflict, when the pod already
// uses what the persister needs for something else.
func Inject(pod *corev1.Pod, files map[string][]string, rawFiles string, caBundle []byte, cfg Config) error {
	if slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == upload.PersisterContainerName }) {
		return fmt.Errorf("spec.containers: container name %q is reserved for the output persister", upload.PersisterContainerName)
	}
	declaring := make([]string, 0, len(files))
	for container := range files {
		if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == container }) {
			return fmt.Errorf("annotation %s declares output for container %q, which is not in spec.containers", qjv1.AnnotationOutputFiles, container)
		}
	}
	// Pod order, so the result does not depend on map order.
	for _, c := range pod.Spec.Containers {
		if _, ok := files[c.Name]; ok {
			declaring = append(declaring, c.Name)
		}
	}

	ours := map[string]bool{upload.TokenVolumeName: true}
	for _, c := range declaring {
		if ours[OutputVolumeName(c)] {
			return fmt.Errorf("containers of this pod map to the same output volume name %q; rename container %q", OutputVolumeName(c), c)
		}
		ours[OutputVolumeName(c)] = true
	}
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, upload.ReservedVolumePrefix) && !ours[v.Name] {
			return fmt.Errorf("spec.volumes: volume name %q uses the prefix %q, which is reserved for the output persister", v.Name, upload.ReservedVolumePrefix)
		}
	}

	persisterMounts := []corev1.VolumeMount{{Name: upload.TokenVolumeName, MountPath: path.Clean(tokenMountDir), ReadOnly: true}}
	for _, container := range declaring {
		volume := OutputVolumeName(container)
		upsertVolume(pod, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == container })
		if err := mountOutput(&pod.Spec.Containers[i], volume); err != nil {
			return err
		}
		persisterMounts = append(persisterMounts, corev1.VolumeMount{Name: volume, MountPath: path.Join(upload.OutputRoot, container), ReadOnly: true})
	}
	upsertVolume(pod, tokenVolume(cfg.TokenExpirationSeconds))
	for _, name := range cfg.ImagePullSecrets {
		if !slices.ContainsFunc(pod.Spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name }) {
			pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
		}
	}

	if grace := pod.Spec.TerminationGracePeriodSeconds; grace == nil || *grace < cfg.MinGracePeriodSeconds {
		pod.Spec.TerminationGracePeriodSeconds = ptr.To(cfg.MinGracePeriodSeconds)
	}
	persister := persisterContainer(cfg, rawFiles, caBundle, UploadTimeout(*pod.Spec.TerminationGracePeriodSeconds), persisterMounts)
	if i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == upload.PersisterContainerName }); i >= 0 {
		pod.Spec.InitContainers[i] = persister
	} else {
		// Last, so the user's init containers run before it as they would
		// without it; it only has to run beside the main containers.
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, persister)
	}

	return nil
}

func upsertVolume(pod *corev1.Pod, volume corev1.Volume) {
	if i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == volume.Name }); i >= 0 {
		pod.Spec.Volumes[i] = volume
		return
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, volume)
}

// mountOutput mounts the output volume at upload.OutputRoot, unless it is
// mounted there already; any other mount at or below upload.OutputRoot is a
// conflict.
func mountOutput(c *corev1.Container, volume string) error {
	for _, m := range c.VolumeMounts {
		mountPath := filepath.Clean(m.MountPath)
		if mountPath == upload.OutputRoot && m.Name == volume && m.SubPath == "" && m.SubPathExpr == "" {
			return nil
		}
		if mountPath == upload.OutputRoot || strings.HasPrefix(mountPath, upload.OutputRoot+"/") {
			return fmt.Errorf("container %q mounts volume %q at %q; %s is reserved for output files", c.Name, m.Name, m.MountPath, upload.OutputRoot)
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: upload.OutputRoot})
	return nil
}

func tokenVolume(expirationSeconds int64) corev1.Volume {
	return corev1.Volume{
		Name: upload.TokenVolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			// The API server's default, set here so injecting twice is a no-op.
			DefaultMode: ptr.To[int32](0o644),
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          upload.Audience,
				ExpirationSeconds: ptr.To(expirationSeconds),
				Path:              tokenFile,
			}}},
		}},
	}
}

// UploadTimeout is how long the persister may try to upload after SIGTERM:
// a few seconds less than the pod's grace period, so it gives up and exits
// before the kubelet kills it.
func UploadTimeout(gracePeriodSeconds int64) string {
	margin := max(gracePeriodSeconds/10, 5)
	if 2*margin > gracePeriodSeconds {
		margin = gracePeriodSeconds / 2
	}
	return strconv.FormatInt(gracePeriodSeconds-margin, 10) + "s"
}

func persisterContainer(cfg Config, rawFiles string, caBundle []byte, uploadTimeout string, mounts []corev1.VolumeMount) corev1.Container {
	fieldEnv := func(name, fieldPath string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: fieldPath}}}
	}
	return corev1.Container{
		Name:            upload.PersisterContainerName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		// A native sidecar: runs beside the main containers and gets SIGTERM
		// when they have all exited, which is when it uploads.
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Env: []corev1.EnvVar{
			{Name: upload.EnvEndpoint, Value: cfg.Endpoint},
			{Name: upload.EnvCABundle, Value: string(caBundle)},
			{Name: upload.EnvOutputFiles, Value: rawFiles},
			{Name: upload.EnvUploadTimeout, Value: uploadTimeout},
			fieldEnv(upload.EnvPodName, "metadata.name"),
			fieldEnv(upload.EnvPodNamespace, "metadata.namespace"),
		},
		Resources:    *cfg.Resources.DeepCopy(),
		VolumeMounts: mounts,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(cfg.RunAsUser),
			RunAsGroup:               ptr.To(cfg.RunAsGroup),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		// The API server's defaults, except the message policy, set here so
		// injecting twice is a no-op.
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}
