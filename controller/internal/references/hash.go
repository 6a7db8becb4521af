package references

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sort"
)

// Input is one referenced object, as read for hashing.
type Input struct {
	Ref
	// Missing is true when the object does not exist.
	Missing bool
	// Digest is DataDigest of the object's data.
	Digest string
}

// DataDigest digests an object's data (a ConfigMap's data and binaryData, a
// Secret's data): its sorted keys and values.
func DataDigest(data map[string][]byte) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		writeField(h, []byte(k))
		writeField(h, data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeField writes s with its length, so that no two sequences of fields
// write the same bytes.
func writeField(h hash.Hash, s []byte) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write(s)
}

// Hash is a digest of the inputs: kinds, names (after versioned-secret
// resolution) and the sorted keys and values of each object. Metadata such as
// labels and annotations is not part of it: only a change of data counts.
func Hash(inputs []Input) string {
	sorted := append([]Input(nil), inputs...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Kind != sorted[j].Kind {
			return sorted[i].Kind < sorted[j].Kind
		}
		return sorted[i].Name < sorted[j].Name
	})
	h := sha256.New()
	field := func(s []byte) { writeField(h, s) }
	for _, in := range sorted {
		field([]byte(in.Kind))
		field([]byte(in.Name))
		if in.Missing {
			field([]byte("missing"))
			continue
		}
		field([]byte("present"))
		field([]byte(in.Digest))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
