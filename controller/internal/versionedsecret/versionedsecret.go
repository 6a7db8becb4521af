// Package versionedsecret names, allocates and prunes versioned Secrets:
// immutable Secrets "<name>-v<N>" labeled with their kind and version.
//
// A new version is allocated without a lock, so that any number of writers
// (controller replicas, concurrent uploads) agree: a writer creates the next
// name; AlreadyExists means another writer took that version, so it reads
// that version and tries the one after. A content identical to the newest
// version is not a new version.
package versionedsecret

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// Versions lists the versions of base in namespace, oldest first, as
// metadata: listing a family never loads every versioned Secret's data. Only
// Secrets labeled as versioned and named exactly "<base>-v<N>" count.
func Versions(ctx context.Context, reader client.Reader, namespace, base string) ([]metav1.PartialObjectMetadata, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := reader.List(ctx, list, client.InNamespace(namespace),
		client.MatchingLabels{qjv1.LabelSecretKind: qjv1.SecretKindVersioned}); err != nil {
		return nil, fmt.Errorf("listing versions of Secret %q in namespace %q: %w", base, namespace, err)
	}
	var versions []metav1.PartialObjectMetadata
	for _, s := range list.Items {
		if b, _, ok := qjv1.ParseVersionedName(s.Name); ok && b == base && s.DeletionTimestamp.IsZero() {
			versions = append(versions, s)
		}
	}
	slices.SortFunc(versions, func(a, b metav1.PartialObjectMetadata) int { return cmp.Compare(version(&a), version(&b)) })
	return versions, nil
}

func version(s metav1.Object) int64 {
	_, v, _ := qjv1.ParseVersionedName(s.GetName())
	return v
}

// Latest returns the newest version of base, or nil when there is none.
func Latest(ctx context.Context, reader client.Reader, namespace, base string) (*corev1.Secret, error) {
	versions, err := Versions(ctx, reader, namespace, base)
	if err != nil {
		return nil, err
	}
	return newest(ctx, reader, namespace, versions)
}

// newest reads the newest of versions (oldest first) that still exists.
func newest(ctx context.Context, reader client.Reader, namespace string, versions []metav1.PartialObjectMetadata) (*corev1.Secret, error) {
	for i := len(versions) - 1; i >= 0; i-- {
		secret := &corev1.Secret{}
		err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: versions[i].Name}, secret)
		if apierrors.IsNotFound(err) {
			continue // pruned since the list
		}
		if err != nil {
			return nil, fmt.Errorf("reading Secret %q in namespace %q: %w", versions[i].Name, namespace, err)
		}
		return secret, nil
	}
	return nil, nil
}

// FamilyNotOwnedError means versions of a versioned Secret exist that
// another owner controls: the family is theirs.
type FamilyNotOwnedError struct {
	Namespace, Base string
	// Owner describes the other controller.
	Owner string
}

func (e *FamilyNotOwnedError) Error() string {
	return fmt.Sprintf("versioned Secret %q in namespace %q belongs to %s; another QuarksJob may not add versions to it (choose another output name)", e.Base, e.Namespace, e.Owner)
}

// checkFamily refuses a family whose versions another owner controls.
// Versions without a controller (left by the original operator, or written
// by hand) do not make the family anybody's.
func checkFamily(versions []metav1.PartialObjectMetadata, spec Spec) error {
	for i := range versions {
		if ref := metav1.GetControllerOf(&versions[i]); ref != nil && ref.UID != spec.Owner.UID {
			return &FamilyNotOwnedError{Namespace: spec.Namespace, Base: spec.Base, Owner: fmt.Sprintf("%s %q", ref.Kind, ref.Name)}
		}
	}
	return nil
}

// Spec is a version to write.
type Spec struct {
	Namespace   string
	Base        string
	Data        map[string][]byte
	Labels      map[string]string
	Annotations map[string]string
	// SourceDescription becomes the source-description annotation.
	SourceDescription string
	// Owner becomes the Secret's controller.
	Owner metav1.OwnerReference
}

// Written is the version a Create ended with.
type Written struct {
	Name    string
	Version int64
	// Created is false when the newest version already held the content.
	Created bool
}

// maxAttempts bounds the allocation loop; each attempt means another writer
// took a version in between, so reaching it needs that many concurrent writers.
const maxAttempts = 10000

// Create writes spec as the next version of spec.Base, unless the newest
// version holds the same data, or a version of the family carries the same
// AnnotationOutputPod (the same pod's upload, written before). reader must read from the API server, not a
// cache, or the loop walks through versions a cache has not seen yet.
func Create(ctx context.Context, c client.Client, reader client.Reader, spec Spec) (Written, error) {
	versions, err := Versions(ctx, reader, spec.Namespace, spec.Base)
	if err != nil {
		return Written{}, err
	}
	if err := checkFamily(versions, spec); err != nil {
		return Written{}, err
	}
	if pod := spec.Annotations[qjv1.AnnotationOutputPod]; pod != "" {
		for i := len(versions) - 1; i >= 0; i-- {
			if v := &versions[i]; v.Annotations[qjv1.AnnotationOutputPod] == pod && controlledBy(v, spec.Owner.UID) {
				return Written{Name: v.Name, Version: version(v)}, nil
			}
		}
	}
	latest, err := newest(ctx, reader, spec.Namespace, versions)
	if err != nil {
		return Written{}, err
	}
	for range maxAttempts {
		next := int64(1)
		if latest != nil {
			if maps.EqualFunc(latest.Data, spec.Data, func(a, b []byte) bool { return string(a) == string(b) }) {
				return Written{Name: latest.Name, Version: version(latest)}, nil
			}
			next = version(latest) + 1
		}
		if next <= 0 {
			// The newest version is numbered math.MaxInt64.
			return Written{}, fmt.Errorf("versioned Secret %q in namespace %q has no version number left after %s; choose another output name", spec.Base, spec.Namespace, latest.Name)
		}
		secret := build(spec, next)
		err := c.Create(ctx, secret)
		if err == nil {
			return Written{Name: secret.Name, Version: next, Created: true}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return Written{}, fmt.Errorf("creating Secret %q in namespace %q: %w", secret.Name, spec.Namespace, err)
		}
		// Another writer took this version: it is now the newest we know of.
		taken := &corev1.Secret{}
		if err := reader.Get(ctx, client.ObjectKeyFromObject(secret), taken); err != nil {
			if apierrors.IsNotFound(err) { // pruned meanwhile; the list knows better
				if latest, err = Latest(ctx, reader, spec.Namespace, spec.Base); err != nil {
					return Written{}, err
				}
				continue
			}
			return Written{}, fmt.Errorf("reading Secret %q in namespace %q: %w", secret.Name, spec.Namespace, err)
		}
		if ref := metav1.GetControllerOf(taken); ref != nil && ref.UID != spec.Owner.UID {
			return Written{}, &FamilyNotOwnedError{Namespace: spec.Namespace, Base: spec.Base, Owner: fmt.Sprintf("%s %q", ref.Kind, ref.Name)}
		}
		latest = taken
		if err := ctx.Err(); err != nil {
			return Written{}, err
		}
	}
	return Written{}, fmt.Errorf("no free version of Secret %q in namespace %q after %d attempts", spec.Base, spec.Namespace, maxAttempts)
}

func build(spec Spec, v int64) *corev1.Secret {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[qjv1.LabelSecretKind] = qjv1.SecretKindVersioned
	labels[qjv1.LabelSecretVersion] = strconv.FormatInt(v, 10)
	annotations := maps.Clone(spec.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[qjv1.AnnotationSourceDescription] = spec.SourceDescription
	owner := spec.Owner
	owner.Controller = ptr.To(true)
	owner.BlockOwnerDeletion = ptr.To(true)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            qjv1.VersionedName(spec.Base, v),
			Namespace:       spec.Namespace,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: ptr.To(true),
		Data:      spec.Data,
	}
}

// Prune deletes the versions of base beyond the newest keep, among those
// controlled by owner. The newest version is never deleted, whatever keep
// says. It returns the names it deleted.
func Prune(ctx context.Context, c client.Client, reader client.Reader, namespace, base string, owner types.UID, keep int) ([]string, error) {
	keep = max(keep, 1)
	versions, err := Versions(ctx, reader, namespace, base)
	if err != nil {
		return nil, err
	}
	if len(versions) <= keep {
		return nil, nil
	}
	var deleted []string
	for i := range versions[:len(versions)-keep] {
		old := &versions[i]
		if !controlledBy(old, owner) {
			continue // never touch what another owner wrote
		}
		err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: old.Name}}, client.Preconditions{UID: &old.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return deleted, fmt.Errorf("deleting old version %q in namespace %q: %w", old.Name, namespace, err)
		}
		deleted = append(deleted, old.Name)
	}
	return deleted, nil
}

func controlledBy(obj metav1.Object, owner types.UID) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == owner
}
