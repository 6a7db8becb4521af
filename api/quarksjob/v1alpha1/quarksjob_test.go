package v1alpha1

import (
	"maps"
	"testing"
)

func TestWithoutReservedKeys(t *testing.T) {
	spec := &Output{
		SecretLabels: map[string]string{LabelQJobName: "other", LabelSecretVersion: "9", "team": "a"},
		OutputMap: OutputMap{"main": FilesToSecrets{"out.json": {
			Name:                        "out",
			AdditionalSecretLabels:      map[string]string{LabelRemoteID: "x", "tier": "b"},
			AdditionalSecretAnnotations: map[string]string{AnnotationOutputOf: "other/qjob", AnnotationOutputPod: "uid", "note": "c"},
		}}},
	}
	before := spec.DeepCopy()
	got := spec.WithoutReservedKeys()
	options := got.OutputMap["main"]["out.json"]
	for name, pair := range map[string][2]map[string]string{
		"secretLabels":                 {got.SecretLabels, {"team": "a"}},
		"file secretLabels":            {options.AdditionalSecretLabels, {"tier": "b"}},
		"file secretAnnotations":       {options.AdditionalSecretAnnotations, {"note": "c"}},
		"original file secretLabels":   {spec.OutputMap["main"]["out.json"].AdditionalSecretLabels, before.OutputMap["main"]["out.json"].AdditionalSecretLabels},
		"original output secretLabels": {spec.SecretLabels, before.SecretLabels},
	} {
		if !maps.Equal(pair[0], pair[1]) {
			t.Errorf("%s = %v; want %v", name, pair[0], pair[1])
		}
	}
	if (*Output)(nil).WithoutReservedKeys() != nil {
		t.Errorf("nil output gained a spec")
	}
}
