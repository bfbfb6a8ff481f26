package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// duration is a time.Duration that is a Go duration string in JSON ("5m0s").
// When read, a number is taken as nanoseconds.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("bad duration %q: %w", s, err)
		}
		*d = duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("bad duration %s: want a string such as \"5m\"", b)
	}
	*d = duration(n)
	return nil
}

// The alias types drop the JSON methods of Shift and Guard; the outer
// duration fields shadow the time.Duration fields of the same JSON name
// because encoding/json prefers the shallower field.
type (
	shiftAlias Shift
	guardAlias Guard
)

type shiftJSON struct {
	*shiftAlias
	Hold duration `json:"hold"`
}

type guardJSON struct {
	*guardAlias
	MaxP95  duration `json:"max_p95"`
	MaxWait duration `json:"max_wait"`
}

// MarshalJSON writes Hold as a duration string.
func (s Shift) MarshalJSON() ([]byte, error) {
	return json.Marshal(shiftJSON{shiftAlias: (*shiftAlias)(&s), Hold: duration(s.Hold)})
}

// UnmarshalJSON reads Hold as a duration string or nanoseconds.
func (s *Shift) UnmarshalJSON(b []byte) error {
	j := shiftJSON{shiftAlias: (*shiftAlias)(s), Hold: duration(s.Hold)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	s.Hold = time.Duration(j.Hold)
	return nil
}

// MarshalJSON writes MaxP95 and MaxWait as duration strings.
func (g Guard) MarshalJSON() ([]byte, error) {
	return json.Marshal(guardJSON{guardAlias: (*guardAlias)(&g), MaxP95: duration(g.MaxP95), MaxWait: duration(g.MaxWait)})
}

// UnmarshalJSON reads MaxP95 and MaxWait as duration strings or nanoseconds.
func (g *Guard) UnmarshalJSON(b []byte) error {
	j := guardJSON{guardAlias: (*guardAlias)(g), MaxP95: duration(g.MaxP95), MaxWait: duration(g.MaxWait)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	g.MaxP95 = time.Duration(j.MaxP95)
	g.MaxWait = time.Duration(j.MaxWait)
	return nil
}
