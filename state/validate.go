package state

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Validate reports the first thing wrong with s: a dial outside 0..100, an
// unknown override, a malformed shift, audit entries out of order. Stores
// refuse to write a snapshot that fails it and to open a file that holds one.
func (s Snapshot) Validate() error {
	if s.Version != FormatVersion {
		return fmt.Errorf("format version %d, want %d", s.Version, FormatVersion)
	}
	for _, svc := range sortedKeys(s.Dials) {
		if svc == "" {
			return errors.New("dials: empty service name")
		}
		for _, r := range sortedKeys(s.Dials[svc]) {
			if r == "" {
				return fmt.Errorf("dials of service %q: empty region name", svc)
			}
			if d := s.Dials[svc][r]; d < 0 || d > 100 {
				return fmt.Errorf("dial of %s/%s: %d is outside 0..100", svc, r, d)
			}
		}
	}
	for _, r := range sortedKeys(s.Overrides) {
		if r == "" {
			return errors.New("overrides: empty region name")
		}
		if o := s.Overrides[r]; !o.Valid() {
			return fmt.Errorf("override of region %q: unknown value %q (want up, down or auto)", r, o)
		}
	}
	if err := validateDrained(s.Drained); err != nil {
		return err
	}
	ids := make(map[string]bool, len(s.Shifts))
	for i, sh := range s.Shifts {
		if err := sh.validate(); err != nil {
			return fmt.Errorf("shift %d (%q): %w", i, sh.ID, err)
		}
		if ids[sh.ID] {
			return fmt.Errorf("shift %d: duplicate id %q", i, sh.ID)
		}
		ids[sh.ID] = true
	}
	if err := s.validateFailovers(); err != nil {
		return err
	}
	for i := 1; i < len(s.Audit); i++ {
		if s.Audit[i].Seq <= s.Audit[i-1].Seq {
			return fmt.Errorf("audit entry %d: seq %d does not follow %d", i, s.Audit[i].Seq, s.Audit[i-1].Seq)
		}
	}
	return nil
}

func (sh Shift) validate() error {
	switch {
	case sh.ID == "":
		return errors.New("empty id")
	case sh.Service == "":
		return errors.New("empty service")
	case sh.Region == "":
		return errors.New("empty region")
	case len(sh.Steps) == 0:
		return errors.New("no steps")
	case sh.Hold < 0:
		return fmt.Errorf("negative hold %s", sh.Hold)
	case sh.Step < 0 || sh.Step > len(sh.Steps):
		return fmt.Errorf("step %d is outside 0..%d", sh.Step, len(sh.Steps))
	case sh.StartDial < 0 || sh.StartDial > 100:
		return fmt.Errorf("start dial %d is outside 0..100", sh.StartDial)
	}
	for i, d := range sh.Steps {
		if d < 0 || d > 100 {
			return fmt.Errorf("step %d: dial %d is outside 0..100", i, d)
		}
	}
	switch sh.State {
	case ShiftRunning, ShiftDone, ShiftRolledBack, ShiftAborted:
	default:
		return fmt.Errorf("unknown state %q", sh.State)
	}
	g := sh.Guard
	switch {
	case !(g.MaxErrorRatio >= 0 && g.MaxErrorRatio <= 1): // NaN too
		return fmt.Errorf("guard: max error ratio %g is outside 0..1", g.MaxErrorRatio)
	case g.MaxP95 < 0:
		return fmt.Errorf("guard: negative max p95 %s", g.MaxP95)
	case g.MinRequests < 0:
		return fmt.Errorf("guard: negative min requests %d", g.MinRequests)
	case g.MaxWait < 0:
		return fmt.Errorf("guard: negative max wait %s", g.MaxWait)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
