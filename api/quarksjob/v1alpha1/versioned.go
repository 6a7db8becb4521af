package v1alpha1

import (
	"fmt"
	"regexp"
	"strconv"
)

// VersionedName is the name of version v of the versioned Secret base.
func VersionedName(base string, version int64) string {
	return fmt.Sprintf("%s-v%d", base, version)
}

var versionSuffix = regexp.MustCompile(`^(.+)-v([0-9]+)$`)

// ParseVersionedName splits "<base>-v<N>" into base and N. Matching is exact: "a-v1x"
// or "a-v" are not versioned names.
func ParseVersionedName(name string) (base string, version int64, ok bool) {
	m := versionSuffix.FindStringSubmatch(name)
	if m == nil {
		return "", 0, false
	}
	v, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != m[2] {
		return "", 0, false // no leading zeros: "a-v01" is not version 1 of "a"
	}
	return m[1], v, true
}
