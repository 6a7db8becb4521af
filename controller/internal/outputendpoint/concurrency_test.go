package outputendpoint

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// TestConcurrentVersionedUploads: 200 pods upload different content to the
// same versioned name at once (versionsToKeep above 200). The Secrets are
// exactly versions 1..200, each holding one pod's content: no gap, no
// duplicate, nothing lost.
func TestConcurrentVersionedUploads(t *testing.T) {
	const uploads = 200
	ns := newNamespace(t)
	spec := &qjv1.Output{VersionsToKeep: ptr.To[int32](250), OutputMap: qjv1.OutputMap{"gen": {"v.json": {Name: "shared", Versioned: true}}}}
	first := newRun(t, ns, "many", spec, "gen")

	// The pods of one run (a Job with parallelism): only the current run's
	// pods may upload, and versioned families belong to one QuarksJob.
	pods := make([]*corev1.Pod, uploads)
	tokens := make([]string, uploads)
	pods[0] = first.pod
	var setup sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range uploads {
		setup.Add(1)
		go func() {
			defer setup.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if i > 0 {
				pods[i] = first.addPod(t, fmt.Sprintf("many-pod-%d", i), "gen")
			}
			exit(t, pods[i], map[string]int32{"gen": 0})
			tokens[i] = token(t, pods[i], upload.Audience)
		}()
	}
	setup.Wait()
	if t.Failed() {
		t.FailNow()
	}

	statuses := make([]int, uploads)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], _ = post(t, tokens[i], files(map[string]map[string]string{"gen": {"v.json": fmt.Sprintf(`{"pod":"%d"}`, i)}}))
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent uploads to one versioned name took %s", uploads, time.Since(began).Round(time.Millisecond))

	versionOf := map[int64]int{}
	for i, pod := range pods {
		if statuses[i] != http.StatusOK {
			t.Fatalf("upload %d: status %d", i, statuses[i])
		}
		res := podResult(t, first.job, pod.Name)
		if res == nil || !res.Persisted || len(res.Secrets) != 1 {
			t.Fatalf("upload %d: result %+v", i, res)
		}
		v := res.Secrets[0].Version
		if other, dup := versionOf[v]; dup {
			t.Fatalf("uploads %d and %d both got version %d", other, i, v)
		}
		versionOf[v] = i
	}
	var list corev1.SecretList
	must(t, k8s.List(context.Background(), &list, client.InNamespace(ns)))
	if len(list.Items) != uploads {
		t.Fatalf("%d Secrets exist, want %d", len(list.Items), uploads)
	}
	for v := int64(1); v <= uploads; v++ {
		i, ok := versionOf[v]
		if !ok {
			t.Fatalf("version %d is missing", v)
		}
		s := secret(t, ns, fmt.Sprintf("shared-v%d", v))
		if string(s.Data["pod"]) != fmt.Sprint(i) {
			t.Fatalf("shared-v%d holds %q, want upload %d's content", v, s.Data["pod"], i)
		}
	}
}
