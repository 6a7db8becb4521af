package inject

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// FuzzInject feeds arbitrary output-files annotations (a user can create a
// labeled pod) through OutputFiles and Inject: no panic, no file name with a
// path accepted, and injecting is a fixpoint.
func FuzzInject(f *testing.F) {
	for _, seed := range []string{`{"gen":["a.json"]}`, `{"a":["x","y"],"b":[]}`, `{"gen":["../x"]}`, `{}`, `[]`, `{"gen":null}`, `{"":[""]}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, annotation string) {
		pod := jobPod(annotation)
		files, ok, err := OutputFiles(pod)
		if err != nil || !ok {
			return
		}
		for _, names := range files {
			for _, name := range names {
				if strings.Contains(name, "/") || name == ".." {
					t.Fatalf("file name %q accepted", name)
				}
			}
		}
		for _, c := range slices.Sorted(maps.Keys(files)) {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c})
		}
		if err := Inject(pod, files, annotation, testCA, testConfig()); err != nil {
			return
		}
		once := pod.DeepCopy()
		if err := Inject(pod, files, annotation, testCA, testConfig()); err != nil {
			t.Fatalf("injecting an injected pod failed: %v", err)
		}
		if !equality.Semantic.DeepEqual(once, pod) {
			t.Fatal("injecting twice changed the pod")
		}
		if pod.Annotations[qjv1.AnnotationOutputFiles] != annotation || persisterOf(pod) == nil {
			t.Fatal("no persister")
		}
	})
}

func persisterOf(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == upload.PersisterContainerName {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
