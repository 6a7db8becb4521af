package references

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func everyKindOfReference() *corev1.PodSpec {
	return &corev1.PodSpec{
		Volumes: []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret"}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-cm"}}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-secret-v2"}}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-cm"}, Optional: ptr.To(true)}},
			}}}},
		},
		InitContainers: []corev1.Container{{Name: "init", Env: []corev1.EnvVar{
			{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "init-env-secret"}, Key: "k"}}},
		}}},
		Containers: []corev1.Container{{Name: "main",
			Env: []corev1.EnvVar{
				{Name: "Y", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-cm"}, Key: "k"}}},
				{Name: "Z", Value: "plain"},
			},
			EnvFrom: []corev1.EnvFromSource{
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "envfrom-secret"}}},
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-cm"}, Optional: ptr.To(true)}},
			},
		}},
	}
}

func TestOfFindsEveryReference(t *testing.T) {
	got := fmt.Sprint(Of(everyKindOfReference()))
	want := "[{ConfigMap env-cm false} {ConfigMap proj-cm true} {ConfigMap vol-cm false} " +
		"{Secret envfrom-secret false} {Secret init-env-secret false} {Secret proj-secret-v2 false} {Secret vol-secret false}]"
	if got != want {
		t.Errorf("Of =\n %s\nwant\n %s", got, want)
	}
}

func TestRename(t *testing.T) {
	spec := everyKindOfReference()
	Rename(spec, map[string]string{"proj-secret-v2": "proj-secret-v3", "vol-cm": "not-a-secret"})
	if got := spec.Volumes[2].Projected.Sources[0].Secret.Name; got != "proj-secret-v3" {
		t.Errorf("projected secret = %s", got)
	}
	if got := spec.Volumes[1].ConfigMap.Name; got != "vol-cm" {
		t.Errorf("a ConfigMap was renamed as a Secret: %s", got)
	}
}

func TestHash(t *testing.T) {
	a := Input{Ref: Ref{Kind: ConfigMap, Name: "a"}, Digest: DataDigest(map[string][]byte{"k": []byte("v"), "l": []byte("w")})}
	b := Input{Ref: Ref{Kind: Secret, Name: "b"}, Digest: DataDigest(map[string][]byte{"x": []byte("y")})}
	base := Hash([]Input{a, b})
	if Hash([]Input{b, a}) != base {
		t.Error("hash depends on input order")
	}
	changed := a
	changed.Digest = DataDigest(map[string][]byte{"k": []byte("v2"), "l": []byte("w")})
	renamed := b
	renamed.Name = "b-v2"
	missing := b
	missing.Missing, missing.Digest = true, ""
	empty := b
	empty.Digest = DataDigest(map[string][]byte{})
	// Moving bytes between key and value must change the hash.
	shifted := a
	shifted.Digest = DataDigest(map[string][]byte{"kv": []byte(""), "l": []byte("w")})
	for name, other := range map[string][]Input{
		"changed value": {changed, b}, "renamed": {a, renamed}, "missing": {a, missing},
		"empty vs missing": {a, empty}, "shifted": {shifted, b}, "fewer": {a},
	} {
		if Hash(other) == base {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	if Hash([]Input{a, missing}) == Hash([]Input{a, empty}) {
		t.Error("missing and empty hash alike")
	}
}
