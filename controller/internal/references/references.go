// Package references finds every ConfigMap and Secret a pod template reads,
// resolves references to versioned Secrets to their newest version, and
// hashes the referenced data. Everything here is pure.
package references

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Kind is the kind of a referenced object.
type Kind string

// The kinds of object a pod template references by name.
const (
	ConfigMap Kind = "ConfigMap"
	Secret    Kind = "Secret"
)

// Ref is one object a pod template reads.
type Ref struct {
	Kind Kind
	Name string
	// Optional is true when every place that reads the object marks it
	// optional: then its absence does not hold a run.
	Optional bool
}

// Of lists the ConfigMaps and Secrets the pod spec reads: volumes (secret,
// configMap, projected sources), env valueFrom and envFrom, in containers and
// init containers. The list is sorted by kind and name; an object read in
// several places appears once, optional only if optional everywhere.
func Of(spec *corev1.PodSpec) []Ref {
	found := map[Ref]bool{} // keyed without Optional; value: required somewhere
	add := func(kind Kind, name string, optional *bool) {
		if name == "" {
			return
		}
		key := Ref{Kind: kind, Name: name}
		found[key] = found[key] || optional == nil || !*optional
	}
	visit(spec, func(r *reference) { add(r.kind, *r.name, r.optional) })

	refs := make([]Ref, 0, len(found))
	for ref, required := range found {
		ref.Optional = !required
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].Kind != refs[j].Kind {
			return refs[i].Kind < refs[j].Kind
		}
		return refs[i].Name < refs[j].Name
	})
	return refs
}

// Rename rewrites every reference to a Secret named by renames (old name →
// new name) in the pod spec, in place.
func Rename(spec *corev1.PodSpec, secrets map[string]string) {
	visit(spec, func(r *reference) {
		if r.kind != Secret {
			return
		}
		if to, ok := secrets[*r.name]; ok {
			*r.name = to
		}
	})
}

// reference points at the name field of one reference in a pod spec.
type reference struct {
	kind     Kind
	name     *string
	optional *bool
}

// visit calls f for each reference in the pod spec, with a pointer to the
// field holding the referenced name.
func visit(spec *corev1.PodSpec, f func(*reference)) {
	for i := range spec.Volumes {
		v := &spec.Volumes[i].VolumeSource
		if v.Secret != nil {
			f(&reference{Secret, &v.Secret.SecretName, v.Secret.Optional})
		}
		if v.ConfigMap != nil {
			f(&reference{ConfigMap, &v.ConfigMap.Name, v.ConfigMap.Optional})
		}
		if v.Projected != nil {
			for j := range v.Projected.Sources {
				s := &v.Projected.Sources[j]
				if s.Secret != nil {
					f(&reference{Secret, &s.Secret.Name, s.Secret.Optional})
				}
				if s.ConfigMap != nil {
					f(&reference{ConfigMap, &s.ConfigMap.Name, s.ConfigMap.Optional})
				}
			}
		}
	}
	containers := func(cs []corev1.Container) {
		for i := range cs {
			c := &cs[i]
			for j := range c.Env {
				if from := c.Env[j].ValueFrom; from != nil {
					if from.SecretKeyRef != nil {
						f(&reference{Secret, &from.SecretKeyRef.Name, from.SecretKeyRef.Optional})
					}
					if from.ConfigMapKeyRef != nil {
						f(&reference{ConfigMap, &from.ConfigMapKeyRef.Name, from.ConfigMapKeyRef.Optional})
					}
				}
			}
			for j := range c.EnvFrom {
				from := &c.EnvFrom[j]
				if from.SecretRef != nil {
					f(&reference{Secret, &from.SecretRef.Name, from.SecretRef.Optional})
				}
				if from.ConfigMapRef != nil {
					f(&reference{ConfigMap, &from.ConfigMapRef.Name, from.ConfigMapRef.Optional})
				}
			}
		}
	}
	containers(spec.InitContainers)
	containers(spec.Containers)
}
