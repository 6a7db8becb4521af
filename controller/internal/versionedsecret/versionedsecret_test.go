package versionedsecret

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		version int64
		ok      bool
	}{
		{"creds-v1", "creds", 1, true},
		{"creds-v12", "creds", 12, true},
		{"my-creds-v2-v3", "my-creds-v2", 3, true},
		{"my-foo-v9", "my-foo", 9, true}, // the family is "my-foo", never "foo"
		{"foobar-v3", "foobar", 3, true},
		{"creds", "", 0, false},
		{"creds-v", "", 0, false},
		{"creds-v1x", "", 0, false},
		{"creds-v01", "", 0, false},
		{"creds-v0", "", 0, false},
		{"-v1", "", 0, false},
		{"creds-V1", "", 0, false},
		{"creds-v99999999999999999999", "", 0, false},
	}
	for _, tt := range tests {
		base, version, ok := ParseName(tt.name)
		if base != tt.base || version != tt.version || ok != tt.ok {
			t.Errorf("ParseName(%q) = %q, %d, %v; want %q, %d, %v", tt.name, base, version, ok, tt.base, tt.version, tt.ok)
		}
		if ok && Name(base, version) != tt.name {
			t.Errorf("Name(%q, %d) = %q", base, version, Name(base, version))
		}
	}
}

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
