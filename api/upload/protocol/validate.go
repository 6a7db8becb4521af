package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// ProblemKind says what is wrong with an output file.
type ProblemKind string

// The problems an output file can have; OutputError's message details each.
const (
	ProblemTooLarge     ProblemKind = "TooLarge"
	ProblemEmpty        ProblemKind = "Empty"
	ProblemInvalidUTF8  ProblemKind = "InvalidUTF8"
	ProblemInvalidJSON  ProblemKind = "InvalidJSON"
	ProblemNotAnObject  ProblemKind = "NotAnObject"
	ProblemNotAString   ProblemKind = "NotAString"
	ProblemNestedObject ProblemKind = "NestedObject"
	ProblemDuplicateKey ProblemKind = "DuplicateKey"
	ProblemTrailingData ProblemKind = "TrailingData"
)

// OutputError is why an output file is not a flat JSON object of strings. Its
// message names the key, the type or the size; callers prefix the container
// and file.
type OutputError struct {
	Kind ProblemKind
	// Key is the offending key, when the problem is about one key.
	Key string
	// Size is the file's size, for ProblemTooLarge.
	Size int
	// Detail is the rest of the message.
	Detail string
}

func (e *OutputError) Error() string {
	switch e.Kind {
	case ProblemTooLarge:
		return fmt.Sprintf("is %d bytes; an output file may hold at most %d bytes (1 MiB, what one Secret holds)", e.Size, MaxFileBytes)
	case ProblemEmpty:
		return "is empty; expected a JSON object of string values"
	case ProblemNotAString, ProblemNestedObject:
		return fmt.Sprintf("value of key %q is %s; only strings are allowed", e.Key, e.Detail)
	case ProblemDuplicateKey:
		return fmt.Sprintf("key %q appears more than once", e.Key)
	default:
		return e.Detail
	}
}

// FileProblem words a problem of a container's output file as the persister
// logs it and the controller reports it: the problem follows the file's
// name ("output file "a.json" of container "gen" is empty"), after a colon
// when it is about one key ("...: value of key "port" is a number; ...").
func FileProblem(container, file string, problem error) string {
	var oe *OutputError
	if errors.As(problem, &oe) && oe.Key != "" {
		return fmt.Sprintf("output file %q of container %q: %v", file, container, problem)
	}
	return fmt.Sprintf("output file %q of container %q %v", file, container, problem)
}

// ParseOutput parses the content of an output file: a flat JSON object whose
// values are all strings, at most MaxFileBytes long. It is the one validator
// the persister (to log problems early) and the controller (which never
// trusts the persister) share. An error is an *OutputError.
func ParseOutput(content []byte) (map[string]string, error) {
	if len(content) > MaxFileBytes {
		return nil, &OutputError{Kind: ProblemTooLarge, Size: len(content)}
	}
	if len(bytes.TrimSpace(content)) == 0 {
		return nil, &OutputError{Kind: ProblemEmpty}
	}
	// Editors on Windows write it; encoding/json's message would point at
	// its first byte as an "invalid character 'ï'".
	if bytes.HasPrefix(content, []byte(byteOrderMark)) {
		return nil, &OutputError{Kind: ProblemInvalidJSON, Detail: "starts with a UTF-8 byte order mark (EF BB BF), which JSON does not allow; write the file without it"}
	}
	// encoding/json would silently replace invalid UTF-8 with U+FFFD: that
	// changes the data, so refuse it.
	if !utf8.Valid(content) {
		return nil, &OutputError{Kind: ProblemInvalidUTF8, Detail: fmt.Sprintf("is not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(content))}
	}

	dec := json.NewDecoder(bytes.NewReader(content))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &OutputError{Kind: ProblemNotAnObject, Detail: fmt.Sprintf("is %s, not a JSON object; expected {\"key\": \"value\", ...}", describe(tok))}
	}

	values := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		key, ok := tok.(string)
		if !ok { // the decoder reports a syntax error first; kept for safety
			return nil, &OutputError{Kind: ProblemInvalidJSON, Detail: "is not valid JSON: object key is not a string"}
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		value, ok := tok.(string)
		if !ok {
			kind := ProblemNotAString
			if d, isDelim := tok.(json.Delim); isDelim && d == '{' {
				kind = ProblemNestedObject
			}
			return nil, &OutputError{Kind: kind, Key: key, Detail: describe(tok)}
		}
		if _, seen := values[key]; seen {
			return nil, &OutputError{Kind: ProblemDuplicateKey, Key: key}
		}
		values[key] = value
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, jsonError(err)
		}
		return nil, &OutputError{Kind: ProblemTrailingData, Detail: fmt.Sprintf("has data after the JSON object (at byte %d)", dec.InputOffset())}
	}
	return values, nil
}

const byteOrderMark = "\ufeff"

// jsonError turns a decoder error into an OutputError naming the offset.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return &OutputError{Kind: ProblemInvalidJSON, Detail: fmt.Sprintf("is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &OutputError{Kind: ProblemInvalidJSON, Detail: "is not valid JSON: unexpected end of file"}
	default:
		return &OutputError{Kind: ProblemInvalidJSON, Detail: fmt.Sprintf("is not valid JSON: %v", err)}
	}
}

// describe names the JSON type of a token as a user reads it.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "a nested object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case string:
		return "a string"
	}
	return fmt.Sprintf("%T", tok)
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}
