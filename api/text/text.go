// Package text cuts what users read (status messages, condition messages,
// Event notes, command output) to a size, always at a character boundary, so
// that a cut message is still valid UTF-8. Every component uses it: one
// rule for how text is cut and how "the rest" is counted.
package text

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Ellipsis marks where text was cut.
const Ellipsis = "…"

// Truncate returns s cut to at most limit bytes, at a character boundary,
// with Ellipsis appended when it was cut; s itself when it fits.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	return cut(s, limit) + Ellipsis
}

// cut returns the longest prefix of s of at most n bytes that ends at a
// character boundary.
func cut(s string, n int) string {
	if n >= len(s) {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// List joins items with sep: at most maxItems of them (0: no bound) and at
// most maxBytes bytes in all, counting the items left out with
// "… and N more". An item is listed whole or not at all, except the first,
// which is cut to fit.
func List(items []string, sep string, maxItems, maxBytes int) string {
	more := func(n int) string { return fmt.Sprintf("%s and %d more", Ellipsis, n) }
	var b strings.Builder
	for i, item := range items {
		room := maxBytes - b.Len()
		if i > 0 {
			room -= len(sep)
		}
		if left := len(items) - i - 1; left > 0 {
			room -= len(sep) + len(more(left)) // what follows this item if the next does not fit
		}
		if i > 0 && ((maxItems > 0 && i >= maxItems) || len(item) > room) {
			b.WriteString(sep + more(len(items)-i))
			break
		}
		if i > 0 {
			b.WriteString(sep)
		}
		if len(item) > room {
			item = Truncate(item, room-len(Ellipsis))
		}
		b.WriteString(item)
	}
	return b.String()
}
