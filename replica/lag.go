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
	if b[0] == '{' {
		var doc struct {
			Lag *json.Number `json:"lag_seconds"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return 0, fmt.Errorf("reading JSON answer: %w", err)
		}
		if dec.More() {
			return 0, errors.New("reading JSON answer: data after the object")
		}
		if doc.Lag == nil {
			return 0, errors.New(`JSON answer has no "lag_seconds"`)
		}
		f, err := doc.Lag.Float64()
		if err != nil {
			return 0, fmt.Errorf("lag_seconds %q: %w", doc.Lag.String(), err)
		}
		v = f
	} else {
		// A bare number: only JSON's number syntax, no Inf, NaN or hex.
		if !json.Valid(b) || b[0] == '"' || b[0] == '[' || b[0] == 't' || b[0] == 'f' || b[0] == 'n' {
			return 0, fmt.Errorf("answer %q is neither a number nor {\"lag_seconds\": N}", truncate(b))
		}
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return 0, fmt.Errorf("answer %q: %w", truncate(b), err)
		}
		v = f
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
