package protocol

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseOutput(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		want     map[string]string
		kind     ProblemKind
		contains string
	}{
		{name: "flat object", content: `{"user":"admin","password":"s3cret"}`, want: map[string]string{"user": "admin", "password": "s3cret"}},
		{name: "empty object", content: " {}\n", want: map[string]string{}},
		{name: "escapes kept", content: `{"a":"line\nbreak \u00e9 \"q\""}`, want: map[string]string{"a": "line\nbreak é \"q\""}},
		{name: "trailing newline", content: "{\"a\":\"b\"}\n", want: map[string]string{"a": "b"}},
		{name: "empty file", content: "", kind: ProblemEmpty, contains: "is empty"},
		{name: "whitespace only", content: " \n\t", kind: ProblemEmpty},
		{name: "not JSON", content: `user=admin`, kind: ProblemInvalidJSON, contains: "not valid JSON"},
		{name: "truncated", content: `{"a":"b"`, kind: ProblemInvalidJSON, contains: "unexpected end"},
		{name: "missing colon", content: `{"a" "b"}`, kind: ProblemInvalidJSON, contains: "at byte"},
		{name: "array", content: `["a"]`, kind: ProblemNotAnObject, contains: "is an array"},
		{name: "string", content: `"a"`, kind: ProblemNotAnObject, contains: "is a string"},
		{name: "null", content: `null`, kind: ProblemNotAnObject, contains: "is null"},
		{name: "number value", content: `{"port":8080}`, kind: ProblemNotAString, contains: `value of key "port" is a number; only strings are allowed`},
		{name: "bool value", content: `{"tls":true}`, kind: ProblemNotAString, contains: `key "tls" is a boolean`},
		{name: "null value", content: `{"a":"x","b":null}`, kind: ProblemNotAString, contains: `key "b" is null`},
		{name: "array value", content: `{"hosts":["a"]}`, kind: ProblemNotAString, contains: `key "hosts" is an array`},
		{name: "nested object", content: `{"db":{"user":"x"}}`, kind: ProblemNestedObject, contains: `value of key "db" is a nested object`},
		{name: "duplicate key", content: `{"a":"1","a":"2"}`, kind: ProblemDuplicateKey, contains: `key "a" appears more than once`},
		{name: "trailing data", content: `{"a":"1"} {"b":"2"}`, kind: ProblemTrailingData, contains: "data after the JSON object"},
		{name: "trailing garbage", content: `{"a":"1"}x`, kind: ProblemInvalidJSON},
		{name: "byte order mark", content: "\ufeff{\"a\":\"b\"}", kind: ProblemInvalidJSON, contains: "starts with a UTF-8 byte order mark"},
		{name: "invalid UTF-8", content: "{\"a\":\"\xff\"}", kind: ProblemInvalidUTF8, contains: "offset 6"},
		{name: "too large", content: `{"a":"` + strings.Repeat("x", MaxFileBytes) + `"}`, kind: ProblemTooLarge, contains: "is 1048584 bytes; an output file may hold at most 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOutput([]byte(tt.content))
			if tt.kind == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !maps.Equal(got, tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				return
			}
			var oe *OutputError
			if !errors.As(err, &oe) {
				t.Fatalf("want an *OutputError of kind %s, got %v", tt.kind, err)
			}
			if oe.Kind != tt.kind {
				t.Fatalf("kind = %s, want %s (%v)", oe.Kind, tt.kind, err)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

func TestParseOutputAtLimit(t *testing.T) {
	prefix, suffix := `{"a":"`, `"}`
	content := prefix + strings.Repeat("x", MaxFileBytes-len(prefix)-len(suffix)) + suffix
	if len(content) != MaxFileBytes {
		t.Fatalf("test content is %d bytes", len(content))
	}
	if _, err := ParseOutput([]byte(content)); err != nil {
		t.Fatalf("a file of exactly %d bytes must be accepted: %v", MaxFileBytes, err)
	}
}

// FuzzParseOutput checks ParseOutput against encoding/json: whatever it
// accepts, encoding/json reads as the same map; whatever it refuses has a
// reason encoding/json would not catch (or also refuses). It must never panic.
func FuzzParseOutput(f *testing.F) {
	for _, seed := range []string{
		`{"a":"b"}`, `{}`, `{"a":1}`, `{"a":{"b":"c"}}`, `{"a":"1","a":"2"}`, `[]`, `null`, `"x"`,
		`{"a":"\u00e9\n"}`, "{\"a\":\"\xff\"}", `{"a":"b"} x`, `{"a":"b"`, ` { "k" : "v" , "l" : "w" } `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		got, err := ParseOutput(content)
		var reference map[string]string
		refErr := json.Unmarshal(content, &reference)
		if err == nil {
			if refErr != nil {
				t.Fatalf("accepted %q, which encoding/json refuses: %v", content, refErr)
			}
			if !maps.Equal(got, reference) {
				t.Fatalf("ParseOutput(%q) = %v, encoding/json reads %v", content, got, reference)
			}
			// What was accepted survives a round trip unchanged.
			again, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseOutput(again)
			if err != nil || !maps.Equal(back, got) {
				t.Fatalf("round trip of %v: %v, %v", got, back, err)
			}
			return
		}
		var oe *OutputError
		if !errors.As(err, &oe) {
			t.Fatalf("error is not an *OutputError: %v", err)
		}
		if oe.Error() == "" {
			t.Fatal("empty error message")
		}
		if refErr == nil && reference != nil {
			// encoding/json accepts it as an object of strings: the refusal
			// must be one of the checks it does not make.
			switch {
			case oe.Kind == ProblemDuplicateKey, oe.Kind == ProblemTooLarge:
			case oe.Kind == ProblemNotAString && oe.Detail == "null":
				// encoding/json reads null as "": null is no string.
			case oe.Kind == ProblemInvalidUTF8:
				if utf8.Valid(content) {
					t.Fatalf("refused valid UTF-8 %q as invalid", content)
				}
			default:
				t.Fatalf("refused %q (%v), which encoding/json reads as %v", content, err, reference)
			}
		}
	})
}
