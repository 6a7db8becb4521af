package versionedsecret

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

func TestBuild(t *testing.T) {
	s := build(Spec{
		Namespace: "ns", Base: "creds", Data: map[string][]byte{"a": []byte("b")},
		Labels:            map[string]string{"team": "x", qjv1.LabelSecretVersion: "spoofed"},
		SourceDescription: "output of a test",
		Owner:             metav1.OwnerReference{APIVersion: "v", Kind: "QuarksJob", Name: "q", UID: "u"},
	}, 7)
	if s.Name != "creds-v7" || s.Labels[qjv1.LabelSecretVersion] != "7" || s.Labels[qjv1.LabelSecretKind] != qjv1.SecretKindVersioned || s.Labels["team"] != "x" {
		t.Errorf("name/labels: %s %v", s.Name, s.Labels)
	}
	if s.Annotations[qjv1.AnnotationSourceDescription] != "output of a test" {
		t.Errorf("annotations: %v", s.Annotations)
	}
	if s.Immutable == nil || !*s.Immutable {
		t.Error("a version must be immutable")
	}
	if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != "u" {
		t.Errorf("owner: %v", s.OwnerReferences)
	}
}
