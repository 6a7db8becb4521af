// Package runpod decides whether a pod is a pod of a run: made by the
// Kubernetes Job controller from the run's recorded Job, with only what the
// pod webhook and the API server's admission add, and running the images its
// spec names. Everything a pod says about itself (labels, ownerReferences,
// finalizers, images) is set by whoever created or last patched it; a tenant
// who may create and patch pods can copy all of it onto a pod of its own
// after that pod ran. So the check compares the whole pod with what the Job's
// template makes of it, and the images the kubelet reports as run with the
// spec. The output endpoint (uploads), the start check and the run's result
// all use Check: one rule.
//
// Check is pure.
package runpod

import (
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/distribution/reference"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

// What the API server's ServiceAccount admission adds to every pod that
// mounts its service account's token: a projected volume and a mount of it in
// each container.
const (
	serviceAccountVolumePrefix = "kube-api-access-"
	serviceAccountMountPath    = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// Check says why pod is not a pod of job, "" when it is. persisterImage is
// the persister image the webhook injects ("" when unknown: any persister
// image is then accepted); its tag may differ, since pods of runs started
// before an upgrade keep the tag they were given.
func Check(pod *corev1.Pod, job *batchv1.Job, persisterImage string) string {
	if ref := metav1.GetControllerOf(pod); ref == nil || ref.UID != job.UID {
		return "it is not controlled by the run's Job"
	}
	if uid := pod.Labels[batchv1.ControllerUidLabel]; uid != string(job.UID) {
		return fmt.Sprintf("its label %s is %q, not the Job's UID", batchv1.ControllerUidLabel, uid)
	}
	if len(pod.Spec.EphemeralContainers) > 0 {
		return fmt.Sprintf("ephemeral container %q was added to it", pod.Spec.EphemeralContainers[0].Name)
	}
	indexed := job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
	if why := sameSpec(&pod.Spec, &job.Spec.Template.Spec, indexed, persisterImage); why != "" {
		return why
	}
	return ranSpecImages(pod, persisterImage)
}

// sameSpec compares the pod's spec with the template's. Placement and
// resources (node, scheduler, priority, tolerations, affinity, gates,
// requests and limits, which admission, the scheduler and in-place resize
// change) decide where and how big a pod runs, never what it runs or what its
// programs read: they are not compared. Everything else is, with what the
// webhook and the ServiceAccount admission add taken out first.
func sameSpec(got, want *corev1.PodSpec, indexed bool, persisterImage string) string {
	volumes := map[string]corev1.Volume{}
	for _, v := range want.Volumes {
		volumes[v.Name] = v
	}
	added := map[string]string{} // volume name → what it is, for the volumes the template lacks
	for _, v := range got.Volumes {
		if w, ok := volumes[v.Name]; ok {
			if !equality.Semantic.DeepEqual(v, w) {
				return fmt.Sprintf("its volume %q is not the Job template's", v.Name)
			}
			continue
		}
		kind, why := addedVolume(v)
		if why != "" {
			return why
		}
		added[v.Name] = kind
	}
	if len(got.Volumes)-len(added) != len(want.Volumes) {
		return fmt.Sprintf("it has %d of the Job template's %d volumes", len(got.Volumes)-len(added), len(want.Volumes))
	}

	inits := slices.Clone(got.InitContainers)
	if i := slices.IndexFunc(inits, func(c corev1.Container) bool { return c.Name == upload.PersisterContainerName }); i >= 0 {
		if why := persister(&inits[i], added, persisterImage); why != "" {
			return why
		}
		inits = slices.Delete(inits, i, i+1)
	}
	if why := sameContainers("init container", inits, want.InitContainers, added, indexed); why != "" {
		return why
	}
	if why := sameContainers("container", got.Containers, want.Containers, added, indexed); why != "" {
		return why
	}

	g, w := wholeSpec(got), wholeSpec(want)
	for _, spec := range []*corev1.PodSpec{&g, &w} {
		if spec.ServiceAccountName == "" {
			// The ServiceAccount admission sets the default one.
			spec.ServiceAccountName = "default"
		}
		if spec.DeprecatedServiceAccount == "" {
			spec.DeprecatedServiceAccount = spec.ServiceAccountName
		}
		if spec.EnableServiceLinks == nil {
			// Defaulted on pods, not on pod templates.
			spec.EnableServiceLinks = ptr.To(corev1.DefaultEnableServiceLinks)
		}
	}
	if !equality.Semantic.DeepEqual(g, w) {
		return "its pod spec is not the Job template's (spec." + firstDifference(g, w) + ")"
	}
	return ""
}

// wholeSpec is the part of a pod spec compared as a whole: containers and
// volumes, compared above, and the placement and resource fields are
// cleared.
func wholeSpec(spec *corev1.PodSpec) corev1.PodSpec {
	s := *spec.DeepCopy()
	s.Volumes, s.InitContainers, s.Containers, s.EphemeralContainers = nil, nil, nil, nil
	s.NodeName, s.NodeSelector, s.Affinity, s.Tolerations, s.SchedulerName = "", nil, nil, nil, ""
	s.Priority, s.PriorityClassName, s.PreemptionPolicy = nil, "", nil
	s.TopologySpreadConstraints, s.SchedulingGates, s.SchedulingGroup, s.Overhead, s.Resources = nil, nil, nil, nil, nil
	// The webhook raises the grace period and adds the persister's pull
	// secrets; the Job controller names an Indexed Job's pods' hosts.
	s.TerminationGracePeriodSeconds, s.ImagePullSecrets, s.Hostname = nil, nil, ""
	// activeDeadlineSeconds may be set on a running pod; it only ends it.
	s.ActiveDeadlineSeconds = nil
	return s
}

// firstDifference names the first field (by its JSON name) in which two
// structs of the same type differ, for the message.
func firstDifference(a, b any) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if !equality.Semantic.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("json"), ",")
			return name + " differs"
		}
	}
	return "a field differs"
}

// addedVolume says what a volume the template lacks is ("output",
// "token" or "service account"), or why it may not be there: only the
// webhook's output and token volumes and the ServiceAccount admission's
// token volume, each in the shape they add, are.
func addedVolume(v corev1.Volume) (kind, why string) {
	switch {
	case v.Name == upload.TokenVolumeName:
		p := v.Projected
		if p == nil || len(p.Sources) != 1 || p.Sources[0].ServiceAccountToken == nil || p.Sources[0].ServiceAccountToken.Audience != upload.Audience {
			return "", fmt.Sprintf("its volume %q is not the persister's token", v.Name)
		}
		return "token", ""
	case strings.HasPrefix(v.Name, upload.OutputVolumePrefix):
		if v.EmptyDir == nil || v.EmptyDir.Medium != "" {
			return "", fmt.Sprintf("its output volume %q is not an empty directory", v.Name)
		}
		return "output", ""
	case strings.HasPrefix(v.Name, serviceAccountVolumePrefix):
		if !serviceAccountVolume(v) {
			return "", fmt.Sprintf("its volume %q is not the service account's token", v.Name)
		}
		return "service account", ""
	}
	return "", fmt.Sprintf("its volume %q is not in the Job's template", v.Name)
}

// serviceAccountVolume reports whether v is shaped as the ServiceAccount
// admission makes it: the account's token, the cluster's CA and the
// namespace, nothing else.
func serviceAccountVolume(v corev1.Volume) bool {
	if v.Projected == nil {
		return false
	}
	for _, s := range v.Projected.Sources {
		switch {
		case s.ServiceAccountToken != nil && s.ServiceAccountToken.Audience == "" && s.ConfigMap == nil && s.DownwardAPI == nil && s.Secret == nil:
		case s.ConfigMap != nil && s.ConfigMap.Name == "kube-root-ca.crt" && s.ServiceAccountToken == nil && s.DownwardAPI == nil && s.Secret == nil:
		case s.DownwardAPI != nil && s.ConfigMap == nil && s.ServiceAccountToken == nil && s.Secret == nil:
			for _, item := range s.DownwardAPI.Items {
				if item.FieldRef == nil || item.FieldRef.FieldPath != "metadata.namespace" {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

// sameContainers compares containers with the template's, in order. Each may
// have, besides the template's mounts, its own output volume at the output
// root (the webhook) and the service account's token (admission); in an
// Indexed Job, the completion index the Job controller adds to its env.
func sameContainers(kind string, got, want []corev1.Container, added map[string]string, indexed bool) string {
	if len(got) != len(want) {
		return fmt.Sprintf("it has %d %ss, the Job's template %d", len(got), kind, len(want))
	}
	for i := range want {
		g, w := *got[i].DeepCopy(), *want[i].DeepCopy()
		if g.Name != w.Name {
			return fmt.Sprintf("its %s %d is %q, the Job template's %q", kind, i, g.Name, w.Name)
		}
		if g.Image != w.Image {
			return fmt.Sprintf("its %s %q names image %q, the Job's template %q", kind, g.Name, g.Image, w.Image)
		}
		mounts := g.VolumeMounts[:0:0]
		for _, m := range g.VolumeMounts {
			if slices.ContainsFunc(w.VolumeMounts, func(wm corev1.VolumeMount) bool { return wm.Name == m.Name && wm.MountPath == m.MountPath }) {
				mounts = append(mounts, m)
				continue
			}
			switch added[m.Name] {
			case "output":
				if m.Name == upload.OutputVolumeName(g.Name) && path.Clean(m.MountPath) == upload.OutputRoot && m.SubPath == "" && m.SubPathExpr == "" {
					continue
				}
			case "service account":
				if serviceAccountMount(m) {
					continue
				}
			}
			return fmt.Sprintf("its %s %q mounts volume %q at %q, which the Job's template does not", kind, g.Name, m.Name, m.MountPath)
		}
		g.VolumeMounts = mounts
		if indexed {
			g.Env = withoutIndexEnv(g.Env, w.Env)
		}
		// Limits and requests: LimitRange admission and in-place resize.
		g.Resources, w.Resources, g.ResizePolicy, w.ResizePolicy = corev1.ResourceRequirements{}, corev1.ResourceRequirements{}, nil, nil
		if !equality.Semantic.DeepEqual(g, w) {
			return fmt.Sprintf("its %s %q is not the Job template's (%s)", kind, g.Name, firstDifference(g, w))
		}
	}
	return ""
}

// serviceAccountMount reports whether m mounts the service account's volume
// as the ServiceAccount admission does.
func serviceAccountMount(m corev1.VolumeMount) bool {
	return m.MountPath == serviceAccountMountPath && m.ReadOnly && m.SubPath == "" && m.SubPathExpr == ""
}

// withoutIndexEnv drops from env the completion-index variable the Job
// controller adds to the containers of an Indexed Job's pods, unless the
// template sets it itself.
func withoutIndexEnv(env, template []corev1.EnvVar) []corev1.EnvVar {
	if slices.ContainsFunc(template, func(e corev1.EnvVar) bool { return e.Name == completionIndexEnv }) {
		return env
	}
	return slices.DeleteFunc(slices.Clone(env), func(e corev1.EnvVar) bool {
		return e.Name == completionIndexEnv && e.Value == "" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			slices.Contains(completionIndexFieldPaths, e.ValueFrom.FieldRef.FieldPath)
	})
}

// completionIndexFieldPaths are where the Job controller points the variable:
// the pod's label since Kubernetes 1.37, its annotation before. Both are set
// by the Job controller to the pod's index.
var completionIndexFieldPaths = []string{
	fmt.Sprintf("metadata.labels['%s']", batchv1.JobCompletionIndexAnnotation),
	fmt.Sprintf("metadata.annotations['%s']", batchv1.JobCompletionIndexAnnotation),
}

// completionIndexEnv is the variable the Job controller sets to the pod's
// completion index in Indexed Jobs.
const completionIndexEnv = "JOB_COMPLETION_INDEX"

// persister checks the persister the webhook injected: the persister image,
// run as built (no command or arguments of its own), mounting only its token
// and each container's output volume at that container's directory.
func persister(c *corev1.Container, added map[string]string, persisterImage string) string {
	if persisterImage != "" && !sameRepository(c.Image, persisterImage) {
		return fmt.Sprintf("its persister runs image %q, not one of repository %q", c.Image, imageRepository(persisterImage))
	}
	if len(c.Command) > 0 || len(c.Args) > 0 || len(c.EnvFrom) > 0 {
		return "its persister does not run as the webhook injects it (command, args or envFrom set)"
	}
	for _, m := range c.VolumeMounts {
		switch added[m.Name] {
		case "token":
			continue
		case "service account":
			if serviceAccountMount(m) {
				continue
			}
		case "output":
			container, ok := strings.CutPrefix(path.Clean(m.MountPath), upload.OutputRoot+"/")
			if ok && m.Name == upload.OutputVolumeName(container) && m.SubPath == "" && m.SubPathExpr == "" {
				continue
			}
		}
		return fmt.Sprintf("its persister mounts volume %q at %q, which the webhook does not", m.Name, m.MountPath)
	}
	return ""
}

// ranSpecImages says which container, if any, ran an image other than its
// spec names: a pod's images can be changed after it ran, and the kubelet
// reports what actually ran.
func ranSpecImages(pod *corev1.Pod, persisterImage string) string {
	specs := map[string]string{}
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		specs[c.Name] = c.Image
	}
	for _, st := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
		spec, ok := specs[st.Name]
		if !ok {
			return fmt.Sprintf("its status reports container %q, which its spec lacks", st.Name)
		}
		if st.Image == "" && st.ImageID == "" {
			continue // not yet reported
		}
		if st.Name == upload.PersisterContainerName && persisterImage != "" {
			// A persister pinned by digest may be reported by its image ID
			// ("sha256:…"); its imageID still names the repository it came from.
			if sameRepository(st.Image, persisterImage) || (isImageID(st.Image) && sameRepository(st.ImageID, persisterImage)) {
				continue
			}
		} else if SameImage(st.Image, st.ImageID, spec) {
			continue
		}
		return fmt.Sprintf("its container %q ran image %q, not %q as its spec says", st.Name, st.Image, spec)
	}
	return ""
}

// SameImage reports whether a container status's image and imageID are the
// image reference spec: equal once normalized as the runtime reports them
// ("busybox" is "docker.io/library/busybox:latest"), or spec's digest is the
// one that ran.
func SameImage(image, imageID, spec string) bool {
	want, err := reference.ParseNormalizedNamed(spec)
	if err != nil {
		return image == spec
	}
	if got, err := reference.ParseNormalizedNamed(image); err == nil &&
		reference.TagNameOnly(got).String() == reference.TagNameOnly(want).String() {
		return true
	}
	if digested, ok := want.(reference.Digested); ok {
		d := digested.Digest().String()
		return strings.HasSuffix(imageID, "@"+d) || imageID == d || image == d
	}
	return false
}

// isImageID reports whether a container status's image is the image's ID
// rather than a reference, as runtimes report images pulled by digest.
func isImageID(image string) bool { return strings.HasPrefix(image, "sha256:") }

// sameRepository reports whether two image references name the same
// repository, whatever their tags and digests.
func sameRepository(image, other string) bool {
	a, errA := reference.ParseNormalizedNamed(image)
	b, errB := reference.ParseNormalizedNamed(other)
	if errA != nil || errB != nil {
		return imageRepository(image) == imageRepository(other)
	}
	return a.Name() == b.Name()
}

// imageRepository is an image reference without its tag and digest.
func imageRepository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}
