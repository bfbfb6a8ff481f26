package state

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// Drain records that an operator took one node out of service (SPEC
// section 9): its readiness is 503 and its anycast prefixes are withdrawn
// until it is undrained. It survives a restart, so that a node drained for
// a deploy comes back drained.
type Drain struct {
	Since  time.Time `json:"since"`
	Token  string    `json:"token,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// SetDrained drains node (d non-nil) or undrains it (nil). An empty map
// is dropped, so that a file written and read back compares equal.
func (s *Snapshot) SetDrained(node string, d *Drain) {
	if d != nil {
		if s.Drained == nil {
			s.Drained = map[string]Drain{}
		}
		s.Drained[node] = *d
		return
	}
	delete(s.Drained, node)
	if len(s.Drained) == 0 {
		s.Drained = nil
	}
}

func cloneDrained(m map[string]Drain) map[string]Drain {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}

func validateDrained(m map[string]Drain) error {
	for _, n := range sortedKeys(m) {
		if n == "" {
			return errors.New("drained: empty node name")
		}
		if m[n].Since.IsZero() {
			return fmt.Errorf("drained node %q: no time", n)
		}
	}
	return nil
}
