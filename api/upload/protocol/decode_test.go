package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *Request
		err  string
	}{
		{name: "message", body: `{"containers":[{"name":"gen","files":[{"name":"a.json","content":"e30="}],"missing":["b.json"]}]}` + "\n",
			want: &Request{Containers: []Container{{Name: "gen", Files: []File{{Name: "a.json", Content: []byte("{}")}}, Missing: []string{"b.json"}}}}},
		{name: "unknown fields are ignored", body: `{"containers":[],"from":"a newer persister"}`, want: &Request{Containers: []Container{}}},
		{name: "empty object", body: `{}`, want: &Request{}},
		{name: "null", body: `null`, err: "null instead of an object"},
		{name: "array", body: `[]`, err: "cannot unmarshal array"},
		{name: "empty body", body: ``, err: "upload is not a valid JSON upload message: EOF"},
		{name: "truncated", body: `{"containers":[`, err: "unexpected EOF"},
		{name: "content not base64", body: `{"containers":[{"name":"gen","files":[{"name":"a","content":"!!"}]}]}`, err: "illegal base64"},
		{name: "trailing object", body: `{} {}`, err: "upload has data after its JSON object, which ends at byte 2"},
		{name: "trailing garbage", body: `{}x`, err: "upload has data after its JSON object, which ends at byte 2: invalid character 'x'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(strings.NewReader(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v; want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeRequestWrapsReadErrors(t *testing.T) {
	body := http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(`{"containers":[]}`)), 5)
	_, err := DecodeRequest(body)
	var tooLarge *http.MaxBytesError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("error %v does not wrap the body's *http.MaxBytesError", err)
	}
}

// FuzzDecodeRequest checks the endpoint's decoder against encoding/json: it
// accepts exactly what json.Unmarshal reads into a Request, except null, and
// reads the same message; what it accepts survives a round trip; and a body
// cut by a size limit is never accepted.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"containers":[{"name":"gen","files":[{"name":"a.json","content":"eyJhIjoiYiJ9"}],"missing":["b.json"]}]}`,
		`{"containers":[{"name":"gen","files":[{"name":"a.json","error":"is a symbolic link"}]}]}`,
		`{}`, `null`, `[]`, `{} {}`, `{}x`, `{"containers":null}`, `{"Containers":[{"NAME":"x"}]}`,
		`{"containers":[{"name":"a"},{"name":"a"}]}`, `{"containers":[{"files":[{"content":"!"}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := DecodeRequest(bytes.NewReader(body))
		var reference Request
		refErr := json.Unmarshal(body, &reference)
		isNull := bytes.Equal(bytes.TrimSpace(body), []byte("null"))
		switch {
		case err == nil && (refErr != nil || isNull):
			t.Fatalf("accepted %q, which is no upload message (encoding/json: %v)", body, refErr)
		case err != nil && refErr == nil && !isNull:
			t.Fatalf("refused %q (%v), which encoding/json reads as %+v", body, err, reference)
		case err != nil:
			if !strings.HasPrefix(err.Error(), "upload ") {
				t.Fatalf("error %q does not say what it is about", err)
			}
		default:
			if !reflect.DeepEqual(*got, reference) {
				t.Fatalf("decoded %+v; encoding/json reads %+v", *got, reference)
			}
			again, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			// Empty lists are left out when encoding, so the round trip
			// is compared encoded.
			back, err := DecodeRequest(bytes.NewReader(again))
			if err != nil {
				t.Fatalf("round trip of %+v: %v", got, err)
			}
			if encoded, _ := json.Marshal(back); !bytes.Equal(encoded, again) {
				t.Fatalf("round trip of %s gave %s", again, encoded)
			}
		}

		if len(body) > 0 {
			// A limit one byte short of the body: the decoder must never
			// take what it could read for the whole message.
			cut := http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(body)), int64(len(body)-1))
			if req, err := DecodeRequest(cut); err == nil {
				t.Fatalf("accepted %q cut at %d bytes: %+v", body, len(body)-1, req)
			}
		}
	})
}
