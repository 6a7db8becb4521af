package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DecodeRequest reads an upload message: exactly one JSON object of the
// Request's shape, and nothing after it but white space. Fields it does not
// know are ignored, so a newer persister can talk to an older controller.
// Errors from body (a size limit the caller wraps it in, say) are wrapped,
// so errors.As finds them.
func DecodeRequest(body io.Reader) (*Request, error) {
	dec := json.NewDecoder(body)
	// Decoding into a pointer leaves it nil for the JSON null, which a
	// struct would take as an empty upload.
	var req *Request
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("upload is not a valid JSON upload message: %w", err)
	}
	if req == nil {
		return nil, errors.New("upload is not a valid JSON upload message: null instead of an object")
	}
	end := dec.InputOffset()
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return req, nil
	case err != nil:
		return nil, fmt.Errorf("upload has data after its JSON object, which ends at byte %d: %w", end, err)
	default:
		return nil, fmt.Errorf("upload has data after its JSON object, which ends at byte %d", end)
	}
}
