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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
	"code.cloudfoundry.org/quarks-job/controller/internal/versionedsecret"
)

// NotOwnedError means a Secret of the output's name exists and is not
// controlled by the QuarksJob: it is left alone.
type NotOwnedError struct {
	Namespace, Name string
	// Owner describes the Secret's controller, or "no owner".
	Owner string
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("Secret %q exists in namespace %q and is not controlled by this QuarksJob (%s); it was not overwritten", e.Name, e.Namespace, e.Owner)
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
func (w *Writer) Write(ctx context.Context, owner *qjv1.QuarksJob, s output.Secret) (qjv1.OutputSecret, error) {
	written := qjv1.OutputSecret{Name: s.Name, Container: s.Container, File: s.File}
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
			return written, err
		}
		written.Name, written.Version = v.Name, v.Version
		// The new version is written whatever happens to the cleanup; a
		// version that could not be deleted now is deleted by a later run.
		_, _ = versionedsecret.Prune(ctx, w.Client, w.Reader, owner.Namespace, s.Name, owner.UID, s.VersionsToKeep)
		return written, nil
	}
	return written, w.writePlain(ctx, owner, s)
}

// writePlain creates the Secret, or updates it when owner controls it.
func (w *Writer) writePlain(ctx context.Context, owner *qjv1.QuarksJob, s output.Secret) error {
	key := client.ObjectKey{Namespace: owner.Namespace, Name: s.Name}
	for range 5 { // conflicts with a concurrent writer: read again and retry
		existing := &corev1.Secret{}
		err := w.Reader.Get(ctx, key, existing)
		if apierrors.IsNotFound(err) {
			secret := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name: s.Name, Namespace: owner.Namespace,
					Labels: s.Labels, Annotations: s.Annotations,
					OwnerReferences: []metav1.OwnerReference{ownerRef(owner)},
				},
				Type: corev1.SecretTypeOpaque,
				Data: s.Data,
			}
			err := w.Client.Create(ctx, secret)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("creating Secret %q in namespace %q: %w", s.Name, owner.Namespace, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading Secret %q in namespace %q: %w", s.Name, owner.Namespace, err)
		}

		if ref := metav1.GetControllerOf(existing); ref == nil || ref.UID != owner.UID {
			return &NotOwnedError{Namespace: owner.Namespace, Name: s.Name, Owner: describeOwner(ref)}
		}
		if sameContent(existing, s) {
			return nil
		}
		existing.Data = s.Data
		existing.StringData = nil
		existing.Labels = s.Labels
		existing.Annotations = s.Annotations
		err = w.Client.Update(ctx, existing)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("updating Secret %q in namespace %q: %w", s.Name, owner.Namespace, err)
		}
		return nil
	}
	return fmt.Errorf("updating Secret %q in namespace %q: it kept changing under concurrent writers", s.Name, owner.Namespace)
}

func sameContent(existing *corev1.Secret, s output.Secret) bool {
	return maps.EqualFunc(existing.Data, s.Data, func(a, b []byte) bool { return string(a) == string(b) }) &&
		maps.Equal(existing.Labels, s.Labels) && maps.Equal(existing.Annotations, s.Annotations)
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
