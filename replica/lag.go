package replica

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// maxLagBody bounds the lag endpoint's answer that is read.
const maxLagBody = 64 << 10

// ParseLag reads a lag endpoint's answer: a JSON object with a number
// "lag_seconds" (other members are ignored), or a bare number of seconds.
// A lag must be finite and not negative.
func ParseLag(body []byte) (float64, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return 0, errors.New("empty answer")
	}
	var v float64
	raw := b
	if b[0] == '{' {
		var doc struct {
			Lag json.RawMessage `json:"lag_seconds"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&doc); err != nil {
			return 0, fmt.Errorf("reading JSON answer: %w", err)
		}
		if dec.More() {
			return 0, errors.New("reading JSON answer: data after the object")
		}
		if len(doc.Lag) == 0 || string(doc.Lag) == "null" {
			return 0, errors.New(`JSON answer has no "lag_seconds"`)
		}
		raw = doc.Lag
	}
	// A number in JSON's syntax: no string, Inf, NaN or hex.
	if !json.Valid(raw) || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, fmt.Errorf("lag %q is neither a number nor {\"lag_seconds\": N}", truncate(raw))
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, fmt.Errorf("lag %q is neither a number nor {\"lag_seconds\": N}: %w", truncate(raw), err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("lag %g is not a finite number of seconds at least 0", v)
	}
	return v, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
