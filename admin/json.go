package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// MaxBodyBytes is the largest request body the API reads.
const MaxBodyBytes = 1 << 20

// maxReasonBytes bounds the reason an operator gives for a change; it is
// stored in every audit entry.
const maxReasonBytes = 1024

// decodeBody reads r's body as one JSON object into dst. Unknown fields,
// trailing data, a body over MaxBodyBytes and (unless optional) an empty
// body are refused.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) && optional {
			return nil
		}
		return bodyError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return badRequest("request body holds more than one JSON value")
	}
	return nil
}

// bodyError turns a decoding error into a message an operator can act on.
func bodyError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; expected a JSON object")
	case errors.As(err, &maxErr):
		return apiErrorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxErr.Limit)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of body")
	case errors.As(err, &syntaxErr):
		return badRequest("malformed JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return badRequest("field %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return badRequest("expected a JSON object, got JSON %s", typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("reading request body: %v", err)
}

// checkReason refuses a reason too long for the audit log.
func checkReason(reason string) error {
	if len(reason) > maxReasonBytes {
		return badRequest("reason is %d bytes long; at most %d are allowed", len(reason), maxReasonBytes)
	}
	return nil
}

// checkQuery refuses query parameters other than allowed, and repeated
// ones.
func checkQuery(q url.Values, allowed ...string) error {
	for name, vals := range q {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			return badRequest("unknown query parameter %q; allowed: %s", name, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return badRequest("query parameter %q is given %d times", name, len(vals))
		}
	}
	return nil
}

// writeJSON answers v as indented JSON with status. v is encoded before
// anything is written, so an encoding failure is still a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(errorBody{Error: "encoding response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
