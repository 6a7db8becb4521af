package versionedsecret

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

const ownerUID = types.UID("6d3c1a1e-0000-4000-8000-000000000001")

func spec(ns, content string) Spec {
	return Spec{
		Namespace: ns, Base: "creds", Data: map[string][]byte{"v": []byte(content)},
		SourceDescription: "test",
		Owner:             metav1.OwnerReference{APIVersion: qjv1.GroupVersion.String(), Kind: "QuarksJob", Name: "q", UID: ownerUID},
	}
}

func TestCreateSkipsIdenticalContent(t *testing.T) {
	integration(t)
	ctx, ns := context.Background(), newNamespace(t)
	first, err := Create(ctx, k8s, k8s, spec(ns, "a"))
	if err != nil || first.Name != "creds-v1" || !first.Created {
		t.Fatalf("first: %+v, %v", first, err)
	}
	same, err := Create(ctx, k8s, k8s, spec(ns, "a"))
	if err != nil || same.Name != "creds-v1" || same.Created {
		t.Fatalf("identical content must not be a new version: %+v, %v", same, err)
	}
	second, err := Create(ctx, k8s, k8s, spec(ns, "b"))
	if err != nil || second.Name != "creds-v2" || second.Version != 2 {
		t.Fatalf("second: %+v, %v", second, err)
	}
	// Back to an older content: that is a change from the newest, a new version.
	third, err := Create(ctx, k8s, k8s, spec(ns, "a"))
	if err != nil || third.Name != "creds-v3" {
		t.Fatalf("third: %+v, %v", third, err)
	}
	// A Secret whose name merely contains the base is not a version of it.
	decoy := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds-extra-v9", Namespace: ns,
		Labels: map[string]string{qjv1.LabelSecretKind: qjv1.SecretKindVersioned}}}
	if err := k8s.Create(ctx, decoy); err != nil {
		t.Fatal(err)
	}
	if latest, err := Latest(ctx, k8s, ns, "creds"); err != nil || latest.Name != "creds-v3" {
		t.Fatalf("latest: %v, %v", latest, err)
	}
}

// TestCreateOncePerPod: a pod's upload written again (its answer was lost,
// the controller was killed mid-write) after another pod's version adds no
// version: the family already holds one carrying the pod's UID.
func TestCreateOncePerPod(t *testing.T) {
	integration(t)
	ctx, ns := context.Background(), newNamespace(t)
	byPod := func(pod, content string) Spec {
		s := spec(ns, content)
		s.Annotations = map[string]string{qjv1.AnnotationOutputPod: pod}
		return s
	}
	if w, err := Create(ctx, k8s, k8s, byPod("pod-a", "a")); err != nil || w.Name != "creds-v1" {
		t.Fatalf("pod a: %+v, %v", w, err)
	}
	if w, err := Create(ctx, k8s, k8s, byPod("pod-b", "b")); err != nil || w.Name != "creds-v2" {
		t.Fatalf("pod b: %+v, %v", w, err)
	}
	again, err := Create(ctx, k8s, k8s, byPod("pod-a", "a"))
	if err != nil || again.Name != "creds-v1" || again.Created {
		t.Fatalf("pod a again: %+v, %v; want its version 1, nothing created", again, err)
	}
	if w, err := Create(ctx, k8s, k8s, byPod("pod-c", "a")); err != nil || w.Name != "creds-v3" || !w.Created {
		t.Fatalf("another pod with pod a's content is a new version: %+v, %v", w, err)
	}
}

func TestPruneKeepsTheNewest(t *testing.T) {
	integration(t)
	ctx, ns := context.Background(), newNamespace(t)
	for i := range 6 {
		if _, err := Create(ctx, k8s, k8s, spec(ns, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	foreign := spec(ns, "x")
	foreign.Owner.UID = "someone-else"
	other := build(foreign, 100) // a newer version written by another owner
	if err := k8s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	deleted, err := Prune(ctx, k8s, k8s, ns, "creds", ownerUID, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deleted, []string{"creds-v1", "creds-v2", "creds-v3", "creds-v4"}) {
		t.Fatalf("deleted %v", deleted)
	}
	versions, _ := Versions(ctx, k8s, ns, "creds")
	if got := names(versions); !slices.Equal(got, []string{"creds-v5", "creds-v6", "creds-v100"}) {
		t.Fatalf("kept %v", got)
	}
	// keep 0 still keeps the newest, and never deletes another owner's version.
	if _, err := Prune(ctx, k8s, k8s, ns, "creds", ownerUID, 0); err != nil {
		t.Fatal(err)
	}
	versions, _ = Versions(ctx, k8s, ns, "creds")
	if got := names(versions); !slices.Equal(got, []string{"creds-v100"}) {
		t.Fatalf("kept %v", got)
	}
}

// TestConcurrentAllocation: 200 writers of different content to the same
// versioned name get exactly versions 1..200, no gap, no duplicate.
func TestConcurrentAllocation(t *testing.T) {
	integration(t)
	const writers = 200
	ctx, ns := context.Background(), newNamespace(t)
	results := make([]Written, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = Create(ctx, k8s, k8s, spec(ns, fmt.Sprintf("content %d", i)))
		}()
	}
	close(start)
	wg.Wait()

	seen := map[int64]int{}
	for i := range writers {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if !results[i].Created {
			t.Fatalf("writer %d wrote different content but got no new version: %+v", i, results[i])
		}
		if other, dup := seen[results[i].Version]; dup {
			t.Fatalf("writers %d and %d both got version %d", other, i, results[i].Version)
		}
		seen[results[i].Version] = i
	}
	var list corev1.SecretList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != writers {
		t.Fatalf("%d Secrets exist, want %d", len(list.Items), writers)
	}
	for v := int64(1); v <= writers; v++ {
		i, ok := seen[v]
		if !ok {
			t.Fatalf("version %d is missing", v)
		}
		s := &corev1.Secret{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: qjv1.VersionedName("creds", v)}, s); err != nil {
			t.Fatal(err)
		}
		if string(s.Data["v"]) != fmt.Sprintf("content %d", i) || s.Labels[qjv1.LabelSecretVersion] != fmt.Sprint(v) {
			t.Fatalf("version %d holds %q (labels %v), want writer %d's content", v, s.Data["v"], s.Labels, i)
		}
	}
}

func names(secrets []metav1.PartialObjectMetadata) []string {
	var out []string
	for _, s := range secrets {
		out = append(out, s.Name)
	}
	return out
}

// TestFamilyBelongsToOneOwner: a second QuarksJob that declares the same
// versioned name gets a clear refusal, and pruning counts only the owner's
// versions.
func TestFamilyBelongsToOneOwner(t *testing.T) {
	integration(t)
	ctx, ns := context.Background(), newNamespace(t)
	if _, err := Create(ctx, k8s, k8s, spec(ns, "a")); err != nil {
		t.Fatal(err)
	}
	other := spec(ns, "b")
	other.Owner.Name, other.Owner.UID = "intruder", "6d3c1a1e-0000-4000-8000-000000000002"
	_, err := Create(ctx, k8s, k8s, other)
	var notOwned *FamilyNotOwnedError
	if !errors.As(err, &notOwned) || !strings.Contains(err.Error(), `versioned Secret "creds" in namespace "`+ns+`" belongs to QuarksJob "q"`) {
		t.Fatalf("a second owner's version: err = %v", err)
	}
	versions, _ := Versions(ctx, k8s, ns, "creds")
	if got := names(versions); !slices.Equal(got, []string{"creds-v1"}) {
		t.Fatalf("versions after the refused write: %v", got)
	}
	deleted, err := Prune(ctx, k8s, k8s, ns, "creds", other.Owner.UID, 1)
	if err != nil || len(deleted) > 0 {
		t.Fatalf("pruning by another owner deleted %v (%v)", deleted, err)
	}
}
