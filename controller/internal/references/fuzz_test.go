package references

import (
	"cmp"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// FuzzOf walks arbitrary pod specs (as JSON, the form a QuarksJob's
// template arrives in). Of must never panic nor change the spec; it lists
// each object once, sorted, never with an empty name. Rename must move every
// Secret reference Of found, and only those, keeping whether each is
// optional; renaming back restores the spec. Hash must not depend on the
// order of its inputs.
func FuzzOf(f *testing.F) {
	seed, err := json.Marshal(everyKindOfReference())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		`{}`,
		`{"volumes":[{"name":"a","secret":{"secretName":""}},{"name":"b","secret":{"secretName":"s","optional":true}}]}`,
		`{"containers":[{"name":"c","env":[{"name":"A","valueFrom":{"secretKeyRef":{"name":"x","key":"k","optional":true}}},{"name":"B","valueFrom":{"secretKeyRef":{"name":"x","key":"k"}}}]}]}`,
		`{"volumes":[{"name":"p","projected":{"sources":[{"secret":{"name":"x"}},{"configMap":{"name":"x"}},{"serviceAccountToken":{"path":"t"}}]}}]}`,
		`{"initContainers":[{"name":"i","envFrom":[{"secretRef":{"name":"s-v1"}},{"configMapRef":{"name":"s-v1"}}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var spec corev1.PodSpec
		if json.Unmarshal(raw, &spec) != nil {
			return
		}
		original := spec.DeepCopy()
		refs := Of(&spec)
		if !reflect.DeepEqual(&spec, original) {
			t.Fatal("Of changed the spec")
		}
		for i, r := range refs {
			if r.Name == "" {
				t.Fatalf("reference without a name: %+v", r)
			}
			if i > 0 && !less(refs[i-1], r) {
				t.Fatalf("not sorted or not unique: %+v before %+v", refs[i-1], r)
			}
		}

		// Rename every Secret to a name no reference has.
		taken := map[string]bool{}
		for _, r := range refs {
			taken[r.Name] = true
		}
		renames, back := map[string]string{}, map[string]string{}
		for _, r := range refs {
			if r.Kind != Secret {
				continue
			}
			to := r.Name + "-renamed"
			for taken[to] {
				to += "-"
			}
			taken[to] = true
			renames[r.Name], back[to] = to, r.Name
		}
		Rename(&spec, renames)
		var want []Ref
		for _, r := range refs {
			if r.Kind == Secret {
				r.Name = renames[r.Name]
			}
			want = append(want, r)
		}
		slices.SortFunc(want, compare)
		if got := Of(&spec); !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Fatalf("after renaming %v: references %+v; want %+v", renames, got, want)
		}
		Rename(&spec, back)
		if !reflect.DeepEqual(&spec, original) {
			t.Fatal("renaming back did not restore the spec")
		}

		inputs := make([]Input, len(refs))
		for i, r := range refs {
			inputs[i] = Input{Ref: r, Missing: i%2 == 0, Digest: DataDigest(map[string][]byte{r.Name: raw})}
		}
		shuffled := append([]Input(nil), inputs...)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] }) //nolint:gosec // G404: a shuffle, not a secret
		if Hash(inputs) != Hash(shuffled) {
			t.Fatal("the hash depends on the order of the inputs")
		}
	})
}

func less(a, b Ref) bool { return compare(a, b) < 0 }

func compare(a, b Ref) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
}
