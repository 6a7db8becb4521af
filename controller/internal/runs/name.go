// Package runs turns a QuarksJob and a run number into the run's Job, and a
// Job back into the run's outcome. Everything here is pure.
package runs

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// maxNameLength is the longest Job name that still fits the job-name label
// Kubernetes sets on the Job's pods.
const maxNameLength = 63

// JobName is the name of run n's Job: "<qjob>-<n>". The name is derived, so a
// retried reconcile finds the Job it already created instead of creating
// another. Names that would be too long keep a prefix and a hash of the whole
// QuarksJob name.
func JobName(qjobName string, n int64) string {
	suffix := "-" + strconv.FormatInt(n, 10)
	if len(qjobName)+len(suffix) <= maxNameLength {
		return qjobName + suffix
	}
	return shorten(qjobName, maxNameLength-len(suffix)) + suffix
}

// generatedSuffixLength is how many random characters the API server
// appends to a generateName.
const generatedSuffixLength = 5

// GeneratedJobNamePrefix is the generateName of run n's Job when its derived
// name (JobName) is taken by a Job the controller did not create: whoever
// may create Jobs can take any name they can predict, so the run takes one
// the API server draws at random, "<qjob>-<n>-<5 random characters>".
func GeneratedJobNamePrefix(qjobName string, n int64) string {
	suffix := "-" + strconv.FormatInt(n, 10) + "-"
	if limit := maxNameLength - generatedSuffixLength; len(qjobName)+len(suffix) > limit {
		return shorten(qjobName, limit-len(suffix)) + suffix
	}
	return qjobName + suffix
}

// LabelValue is the value of the qjob-name label for a QuarksJob name: the
// name itself when it fits in a label value, else a prefix and a hash.
func LabelValue(qjobName string) string {
	if len(qjobName) <= maxNameLength {
		return qjobName
	}
	return shorten(qjobName, maxNameLength)
}

// shorten cuts name to limit characters, keeping a prefix and 8 hex digits of
// its hash so that different long names stay different.
func shorten(name string, limit int) string {
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:])[:8]
	prefix := name[:limit-len(hash)-1]
	// A name component must end alphanumeric; "." or "-" may not precede "-".
	for len(prefix) > 0 && (prefix[len(prefix)-1] == '-' || prefix[len(prefix)-1] == '.') {
		prefix = prefix[:len(prefix)-1]
	}
	return prefix + "-" + hash
}
