// Package secretwriter writes a run's output Secrets. Plain Secrets are
// created or updated in place and controlled by the QuarksJob; a Secret of
// that name that the QuarksJob does not control is never overwritten.
// Versioned Secrets are allocated by package versionedsecret.
package secretwriter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
	"code.cloudfoundry.org/quarks-job/controller/internal/versionedsecret"
)

// NotOwnedError means a Secret of the output's name exists and is not the
// QuarksJob's output: it is left alone.
type NotOwnedError struct {
	Namespace, Name string
	// Owner describes whose the Secret is.
	Owner string
	// Container would make the Secret adoptable as its label value.
	Container string
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("Secret %q exists in namespace %q and is not this QuarksJob's output (%s); it was not overwritten. "+
		"Delete it to let the next run write it; or, to keep it until then, have it labeled %s=%s (as the original quarks-job did; "+
		"with the chart's admission policy only its exempt users may set that label) and its other owners removed",
		e.Name, e.Namespace, e.Owner, qjv1.LabelPersistentSecretContainer, e.Container)
}

// IsNotOwned reports whether err says the Secret, or the versioned
// Secret's family, belongs to someone else: a *NotOwnedError or a
// *versionedsecret.FamilyNotOwnedError. Retrying cannot help.
func IsNotOwned(err error) bool {
	var e *NotOwnedError
	var family *versionedsecret.FamilyNotOwnedError
	return errors.As(err, &e) || errors.As(err, &family)
}

// Writer writes output Secrets.
type Writer struct {
	Client client.Client
	// Reader reads from the API server (the manager's APIReader): ownership
	// and version checks must not act on a stale cache.
	Reader client.Reader

	// names serializes the writes of one Secret name within this process.
	// Correctness does not depend on it (allocation is atomic across
	// replicas); it spares concurrent uploads to one versioned name from
	// racing for the same next version, which costs O(n²) requests.
	names keyedMutex
}

// keyedMutex is a mutex per key; its zero value is ready to use.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l, ok := k.locks[key]
	if !ok {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete

// Write writes one output Secret for the QuarksJob owner and returns what a
// QuarksJob status lists about it. A versioned Secret whose newest version
// holds the same data is not written again.
func (w *Writer) Write(ctx context.Context, owner *qjv1.QuarksJob, s output.Secret) (written qjv1.OutputSecret, adopted bool, err error) {
	written = qjv1.OutputSecret{Name: s.Name, Container: s.Container, File: s.File}
	defer w.names.lock(owner.Namespace + "/" + s.Name)()
	if s.Versioned {
		v, err := versionedsecret.Create(ctx, w.Client, w.Reader, versionedsecret.Spec{
			Namespace:         owner.Namespace,
			Base:              s.Name,
			Data:              s.Data,
			Labels:            s.Labels,
			Annotations:       s.Annotations,
			SourceDescription: fmt.Sprintf("output file %q of container %q of QuarksJob %q", s.File, s.Container, owner.Name),
			Owner:             ownerRef(owner),
		})
		if err != nil {
			return written, false, err
		}
		written.Name, written.Version = v.Name, v.Version
		// The new version is written whatever happens to the cleanup; a
		// version that could not be deleted now is deleted by a later run.
		_, _ = versionedsecret.Prune(ctx, w.Client, w.Reader, owner.Namespace, s.Name, owner.UID, s.VersionsToKeep)
		return written, false, nil
	}
	adopted, err = w.writePlain(ctx, owner, s)
	return written, adopted, err
}

// writePlain creates the Secret, or updates it when it is owner's output:
// controlled by owner (deletePolicy Delete), or annotated as the output of a
// QuarksJob of owner's name (Retain). A Secret the original quarks-job wrote
// (no owner, labeled with the declaring container) is adopted: brought to
// this form, and reported. Anything else is left alone.
func (w *Writer) writePlain(ctx context.Context, owner *qjv1.QuarksJob, s output.Secret) (adopted bool, err error) {
	key := client.ObjectKey{Namespace: owner.Namespace, Name: s.Name}
	// Most output Secrets are new: try to create first, one round trip.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: owner.Namespace}, Type: corev1.SecretTypeOpaque}
	claim(secret, owner, s)
	switch err := w.Client.Create(ctx, secret); {
	case err == nil:
		return false, nil
	case !apierrors.IsAlreadyExists(err):
		return false, fmt.Errorf("creating Secret %q in namespace %q: %w", s.Name, owner.Namespace, err)
	}
	for range 5 { // conflicts with a concurrent writer: read again and retry
		existing := &corev1.Secret{}
		err := w.Reader.Get(ctx, key, existing)
		if apierrors.IsNotFound(err) {
			secret := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: owner.Namespace},
				Type:       corev1.SecretTypeOpaque,
			}
			claim(secret, owner, s)
			err := w.Client.Create(ctx, secret)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return false, fmt.Errorf("creating Secret %q in namespace %q: %w", s.Name, owner.Namespace, err)
			}
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading Secret %q in namespace %q: %w", s.Name, owner.Namespace, err)
		}

		adopting, err := ownership(existing, owner, s)
		if err != nil {
			return false, err
		}
		updated := existing.DeepCopy()
		claim(updated, owner, s)
		if !adopting && sameContent(existing, updated) {
			return false, nil
		}
		err = w.Client.Update(ctx, updated)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("updating Secret %q in namespace %q: %w", s.Name, owner.Namespace, err)
		}
		return adopting, nil
	}
	return false, fmt.Errorf("updating Secret %q in namespace %q: it kept changing under concurrent writers", s.Name, owner.Namespace)
}

// ownership says whether existing is owner's output (adopting: the
// original quarks-job's), or why not.
func ownership(existing *corev1.Secret, owner *qjv1.QuarksJob, s output.Secret) (adopting bool, err error) {
	notOwned := func(whose string) error {
		return &NotOwnedError{Namespace: owner.Namespace, Name: s.Name, Owner: whose, Container: s.Container}
	}
	ref := metav1.GetControllerOf(existing)
	outputOf, annotated := existing.Annotations[qjv1.AnnotationOutputOf]
	switch {
	case ref != nil && ref.UID == owner.UID:
		return false, nil
	case ref != nil:
		return false, notOwned(describeOwner(ref))
	case annotated && outputOf == owner.Name:
		return false, nil
	case annotated:
		return false, notOwned(fmt.Sprintf("it is the output of QuarksJob %q", outputOf))
	case existing.Labels[qjv1.LabelPersistentSecretContainer] == s.Container:
		return true, nil
	default:
		return false, notOwned("it has no controller and no label " + qjv1.LabelPersistentSecretContainer + "=" + s.Container)
	}
}

// claim gives secret the output's data, labels and annotations and marks it
// as owner's output by the output's delete policy: controlled by owner
// (Delete), or annotated with owner's name (Retain), so that it outlives it.
func claim(secret *corev1.Secret, owner *qjv1.QuarksJob, s output.Secret) {
	secret.Data, secret.StringData = s.Data, nil
	secret.Labels = maps.Clone(s.Labels)
	secret.Annotations = maps.Clone(s.Annotations)
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	var others []metav1.OwnerReference
	for _, ref := range secret.OwnerReferences {
		if ref.UID != owner.UID {
			others = append(others, ref)
		}
	}
	secret.OwnerReferences = others
	if s.Retain {
		secret.Annotations[qjv1.AnnotationOutputOf] = owner.Name
	} else {
		secret.OwnerReferences = append(secret.OwnerReferences, ownerRef(owner))
	}
}

func sameContent(existing, updated *corev1.Secret) bool {
	return maps.EqualFunc(existing.Data, updated.Data, func(a, b []byte) bool { return string(a) == string(b) }) &&
		maps.Equal(existing.Labels, updated.Labels) && maps.Equal(existing.Annotations, updated.Annotations) &&
		equality.Semantic.DeepEqual(existing.OwnerReferences, updated.OwnerReferences)
}

func ownerRef(owner *qjv1.QuarksJob) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         qjv1.GroupVersion.String(),
		Kind:               "QuarksJob",
		Name:               owner.Name,
		UID:                owner.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

func describeOwner(ref *metav1.OwnerReference) string {
	if ref == nil {
		return "it has no controller"
	}
	return fmt.Sprintf("its controller is %s %q", ref.Kind, ref.Name)
}
