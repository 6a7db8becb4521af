package quarksjob

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/controller/internal/references"
	"code.cloudfoundry.org/quarks-job/controller/internal/versionedsecret"
)

// referenceIndex indexes QuarksJobs by the objects their template reads:
// "Secret/<name>", "ConfigMap/<name>", and "VersionedSecret/<base>" for a
// reference to a version of a versioned Secret.
const referenceIndex = ".spec.template.references"

func referenceKeys(qjob *qjv1.QuarksJob) []string {
	var keys []string
	for _, ref := range references.Of(&qjob.Spec.Template.Spec.Template.Spec) {
		keys = append(keys, string(ref.Kind)+"/"+ref.Name)
		if base, _, ok := qjv1.ParseVersionedName(ref.Name); ok && ref.Kind == references.Secret {
			keys = append(keys, "VersionedSecret/"+base)
		}
	}
	return keys
}

// keysFor are the index keys under which a changed object finds the
// QuarksJobs that read it.
func keysFor(kind references.Kind, name string) []string {
	keys := []string{string(kind) + "/" + name}
	if base, _, ok := qjv1.ParseVersionedName(name); ok && kind == references.Secret {
		keys = append(keys, "VersionedSecret/"+base)
	}
	return keys
}

// inputs is what a run would read: the references resolved to the newest
// versions of versioned Secrets, which required ones are missing, and the
// hash of the referenced data.
type inputs struct {
	// renames maps referenced versioned Secret names to their newest version.
	renames map[string]string
	missing []references.Ref
	hash    string
}

func (in inputs) missingNames() string {
	names := make([]string, len(in.missing))
	for i, ref := range in.missing {
		names[i] = string(ref.Kind) + " " + ref.Name
	}
	return strings.Join(names, ", ")
}

// digests remembers the data digest of each referenced object by
// resourceVersion, so data is read from the API server only when it changed.
// The cache holds Secrets and ConfigMaps as metadata only.
type digests struct {
	mu      sync.Mutex
	entries map[string]digestEntry
}

type digestEntry struct {
	resourceVersion string
	digest          string
}

// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch

// readInputs resolves and reads the objects qjob's template references. The
// data is read (and hashed) only when withData is set: for QuarksJobs that
// run again on configuration changes.
func (r *Reconciler) readInputs(ctx context.Context, qjob *qjv1.QuarksJob, withData bool) (inputs, error) {
	in := inputs{renames: map[string]string{}}
	refs := references.Of(&qjob.Spec.Template.Spec.Template.Spec)
	var hashed []references.Input
	for _, ref := range refs {
		if ref.Kind == references.Secret {
			newest, err := r.newestVersion(ctx, qjob.Namespace, ref.Name)
			if err != nil {
				return in, err
			}
			if newest != ref.Name {
				in.renames[ref.Name] = newest
				ref.Name = newest
			}
		}
		meta, err := r.metadataOf(ctx, qjob.Namespace, ref)
		if err != nil {
			return in, err
		}
		if meta == nil && !ref.Optional {
			in.missing = append(in.missing, ref)
		}
		if !withData {
			continue
		}
		input := references.Input{Ref: ref, Missing: meta == nil}
		if meta != nil {
			if input.Digest, err = r.digestOf(ctx, qjob.Namespace, ref, meta.ResourceVersion); err != nil {
				return in, err
			}
			input.Missing = input.Digest == ""
		}
		hashed = append(hashed, input)
	}
	if withData {
		in.hash = references.Hash(hashed)
	}
	return in, nil
}

// newestVersion returns the name of the newest version of the versioned
// Secret family that name belongs to, or name itself when it does not name a
// version of an existing family. Family membership is exact: the newest of
// "foo-v2" is among "foo-v<digits>" only.
func (r *Reconciler) newestVersion(ctx context.Context, namespace, name string) (string, error) {
	base, _, ok := qjv1.ParseVersionedName(name)
	if !ok {
		return name, nil
	}
	versions, err := versionedsecret.Versions(ctx, r.Client, namespace, base)
	if err != nil || len(versions) == 0 {
		return name, err
	}
	return versions[len(versions)-1].Name, nil
}

// metadataOf reads a referenced object's metadata from the cache; nil when
// it does not exist.
func (r *Reconciler) metadataOf(ctx context.Context, namespace string, ref references.Ref) (*metav1.PartialObjectMetadata, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(string(ref.Kind)))
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, meta)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
	}
	return meta, nil
}

// digestOf returns the digest of a referenced object's data at the given
// resourceVersion, reading the data from the API server when it changed. An
// empty digest means the object is gone.
func (r *Reconciler) digestOf(ctx context.Context, namespace string, ref references.Ref, resourceVersion string) (string, error) {
	key := string(ref.Kind) + "/" + namespace + "/" + ref.Name
	r.digests.mu.Lock()
	entry, ok := r.digests.entries[key]
	r.digests.mu.Unlock()
	if ok && entry.resourceVersion == resourceVersion {
		return entry.digest, nil
	}

	var data map[string][]byte
	var readVersion string
	objectKey := types.NamespacedName{Namespace: namespace, Name: ref.Name}
	switch ref.Kind {
	case references.Secret:
		secret := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, objectKey, secret); err != nil {
			return "", client.IgnoreNotFound(err)
		}
		data, readVersion = secret.Data, secret.ResourceVersion
	case references.ConfigMap:
		cm := &corev1.ConfigMap{}
		if err := r.APIReader.Get(ctx, objectKey, cm); err != nil {
			return "", client.IgnoreNotFound(err)
		}
		data, readVersion = make(map[string][]byte, len(cm.Data)+len(cm.BinaryData)), cm.ResourceVersion
		for k, v := range cm.BinaryData {
			data[k] = v
		}
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
	}
	digest := references.DataDigest(data)
	r.digests.mu.Lock()
	if r.digests.entries == nil {
		r.digests.entries = map[string]digestEntry{}
	}
	r.digests.entries[key] = digestEntry{resourceVersion: readVersion, digest: digest}
	r.digests.mu.Unlock()
	return digest, nil
}

// debouncer lets a burst of configuration changes settle into one run: a
// changed hash must stay the same for the window before a run is requested.
// It lives in memory: after a restart a change just waits one window again.
type debouncer struct {
	mu    sync.Mutex
	since map[types.NamespacedName]debounced
}

type debounced struct {
	hash string
	at   time.Time
}

// settled reports whether hash has been the current hash of key for window;
// if not, wait is how long until it would be. A settled hash stays settled
// until it changes or is forgotten, so that a change waiting for an active
// run keeps showing as pending.
func (d *debouncer) settled(key types.NamespacedName, hash string, now time.Time, window time.Duration) (ok bool, wait time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.since == nil {
		d.since = map[types.NamespacedName]debounced{}
	}
	seen, found := d.since[key]
	if !found || seen.hash != hash {
		d.since[key] = debounced{hash: hash, at: now}
		return window <= 0, window
	}
	if elapsed := now.Sub(seen.at); elapsed < window {
		return false, window - elapsed
	}
	return true, 0
}

func (d *debouncer) forget(key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.since, key)
}
