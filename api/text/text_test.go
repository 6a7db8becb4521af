package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456789…"},
		{"ééééé", 5, "éé…"}, // é is 2 bytes: the cut does not split one
		{"日本語", 4, "日…"},
		{"abc", 0, "…"},
	} {
		if got := Truncate(tc.s, tc.max); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
		}
	}
}

func TestList(t *testing.T) {
	for _, tc := range []struct {
		name     string
		items    []string
		maxItems int
		maxBytes int
		want     string
	}{
		{"all fit", []string{"a", "b", "c"}, 0, 100, "a; b; c"},
		{"none", nil, 0, 100, ""},
		{"item bound", []string{"a", "b", "c", "d"}, 2, 100, "a; b; … and 2 more"},
		{"byte bound", []string{"aaaa", "bbbb", "cccc", "dddd"}, 0, 28, "aaaa; bbbb; … and 2 more"},
		{"a long first item is cut to leave room for the rest", []string{strings.Repeat("x", 50), "y"}, 0, 30, "xxxxxxxxxxx…; y"},
		{"a long first item is cut, the rest counted", []string{strings.Repeat("x", 50), strings.Repeat("y", 20)}, 0, 30, "xxxxxxxxxxx…; … and 1 more"},
		{"one long item", []string{strings.Repeat("é", 50)}, 0, 11, "éééé…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := List(tc.items, "; ", tc.maxItems, tc.maxBytes)
			if got != tc.want {
				t.Errorf("List = %q, want %q", got, tc.want)
			}
			if len(got) > tc.maxBytes || !utf8.ValidString(got) {
				t.Errorf("List = %q: %d bytes (at most %d), valid UTF-8 %v", got, len(got), tc.maxBytes, utf8.ValidString(got))
			}
		})
	}
	// Whatever the items, the result fits and is valid UTF-8.
	items := []string{strings.Repeat("日", 400), strings.Repeat("é", 300), "x"}
	for limit := 0; limit < 1200; limit += 7 {
		if got := List(items, ", ", 10, limit); len(got) > limit && limit >= 40 || !utf8.ValidString(got) {
			t.Fatalf("List(…, %d) = %d bytes, valid %v", limit, len(got), utf8.ValidString(got))
		}
	}
}
