package runs

import (
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// Unrecorded says whether a Job that exists under a run's name, but whose
// UID the QuarksJob's status does not hold, can be the Job the controller
// created for that run and then crashed before recording it. It returns ""
// when it can, else why not.
//
// The controller creates every run's Job suspended and resumes it only after
// recording its UID, so its own unrecorded Job has never run a pod. Anyone
// who may create Jobs can copy the name, labels and ownerReference; what they
// cannot do without also being caught here is run other code: the pods'
// containers must be exactly those the controller builds for the run now.
// (The chart's admission policy refuses such a Job outright; this check
// holds without it.)
func Unrecorded(found, expected *batchv1.Job, owner types.UID) string {
	if ref := metav1.GetControllerOf(found); ref == nil || ref.UID != owner {
		return "it is not controlled by this QuarksJob"
	}
	if found.Spec.Suspend == nil || !*found.Spec.Suspend {
		return "it is not suspended, and the controller creates every run's Job suspended"
	}
	if found.Status.Active+found.Status.Succeeded+found.Status.Failed > 0 || found.Status.StartTime != nil {
		return "it has started pods"
	}
	if found.Labels[qjv1.LabelRun] != expected.Labels[qjv1.LabelRun] {
		return fmt.Sprintf("its run label is %q, not %q", found.Labels[qjv1.LabelRun], expected.Labels[qjv1.LabelRun])
	}
	if !samePods(&found.Spec.Template.Spec, &expected.Spec.Template.Spec) {
		return "its pod template differs from the one the controller builds for this run"
	}
	return ""
}

// samePods compares what decides what a pod runs and sees: the containers'
// code, arguments, environment and mounts, the volumes' sources and the
// service account. Fields the API server defaults are left out.
func samePods(a, b *corev1.PodSpec) bool {
	return slices.EqualFunc(a.InitContainers, b.InitContainers, sameContainer) &&
		slices.EqualFunc(a.Containers, b.Containers, sameContainer) &&
		slices.EqualFunc(a.Volumes, b.Volumes, sameVolume) &&
		serviceAccount(a) == serviceAccount(b)
}

func sameContainer(a, b corev1.Container) bool {
	return a.Name == b.Name && a.Image == b.Image && slices.Equal(a.Command, b.Command) && slices.Equal(a.Args, b.Args) &&
		a.WorkingDir == b.WorkingDir && equality.Semantic.DeepEqual(defaultedEnv(a.Env), defaultedEnv(b.Env)) && equality.Semantic.DeepEqual(a.EnvFrom, b.EnvFrom) &&
		slices.EqualFunc(a.VolumeMounts, b.VolumeMounts, func(x, y corev1.VolumeMount) bool {
			return x.Name == y.Name && x.MountPath == y.MountPath && x.SubPath == y.SubPath && x.ReadOnly == y.ReadOnly
		})
}

// sameVolume compares a volume's name and what it mounts, leaving out the
// modes the API server defaults.
func sameVolume(a, b corev1.Volume) bool {
	if a.Name != b.Name {
		return false
	}
	strip := func(v corev1.Volume) corev1.VolumeSource {
		s := *v.VolumeSource.DeepCopy()
		if s.Secret != nil {
			s.Secret.DefaultMode = nil
		}
		if s.ConfigMap != nil {
			s.ConfigMap.DefaultMode = nil
		}
		if s.Projected != nil {
			s.Projected.DefaultMode = nil
			for i := range s.Projected.Sources {
				if t := s.Projected.Sources[i].ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
					t.ExpirationSeconds = ptr.To[int64](3600)
				}
			}
		}
		if s.DownwardAPI != nil {
			s.DownwardAPI.DefaultMode = nil
		}
		return s
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

func serviceAccount(p *corev1.PodSpec) string {
	if p.ServiceAccountName == "" {
		return "default"
	}
	return p.ServiceAccountName
}

// defaultedEnv is env as the API server stores it: a field reference names
// its API version.
func defaultedEnv(env []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, len(env))
	for i, e := range env {
		out[i] = *e.DeepCopy()
		if f := out[i].ValueFrom; f != nil && f.FieldRef != nil && f.FieldRef.APIVersion == "" {
			f.FieldRef.APIVersion = "v1"
		}
	}
	return out
}
