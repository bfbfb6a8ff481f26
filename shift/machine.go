package shift

import (
	"errors"
	"fmt"
	"time"

	"github.com/meridian-edge/meridian/state"
)

// Limits on a shift request.
const (
	// MaxSteps bounds the steps of one shift.
	MaxSteps = 100
	// DefaultHold is the hold of a shift that names none.
	DefaultHold = 5 * time.Minute
)

// Validate checks a shift's steps, hold and guard as given by an operator
// (hold 0 stands for DefaultHold; zero guard fields for their defaults).
func Validate(steps []int, hold time.Duration, g state.Guard) error {
	switch {
	case len(steps) == 0:
		return errors.New("a shift needs at least one step")
	case len(steps) > MaxSteps:
		return fmt.Errorf("a shift has at most %d steps, not %d", MaxSteps, len(steps))
	case hold < 0:
		return fmt.Errorf("hold %s is negative", hold)
	}
	for i, d := range steps {
		if d < 0 || d > 100 {
			return fmt.Errorf("step %d: dial %d is outside 0..100", i+1, d)
		}
	}
	if hold == 0 {
		hold = DefaultHold
	}
	switch {
	case !(g.MaxErrorRatio >= 0 && g.MaxErrorRatio <= 1): // NaN too
		return fmt.Errorf("max_error_ratio %g is outside 0..1", g.MaxErrorRatio)
	case g.MaxP95 < 0:
		return fmt.Errorf("max_p95 %s is negative", g.MaxP95)
	case g.MinRequests < 0:
		return fmt.Errorf("min_requests %d is negative", g.MinRequests)
	case g.MaxWait < 0:
		return fmt.Errorf("max_wait %s is negative", g.MaxWait)
	case g.MaxWait > 0 && g.MaxWait < hold:
		return fmt.Errorf("max_wait %s is shorter than hold %s", g.MaxWait, hold)
	}
	return nil
}

// PrevDial is the dial the shift's current step moved from: the start
// dial for the first step, else the previous step's.
func PrevDial(sh *state.Shift) int {
	if sh.Step <= 0 || sh.Step > len(sh.Steps) {
		return sh.StartDial
	}
	return sh.Steps[sh.Step-1]
}

// Dial is the dial of the shift's current step.
func Dial(sh *state.Shift) int {
	if sh.Step < 0 || sh.Step >= len(sh.Steps) {
		return sh.StartDial
	}
	return sh.Steps[sh.Step]
}

// Gaining returns the regions that gain traffic when region's dial in a
// service with regions moves from → to: region itself when the dial rises
// or stays, the service's other regions (where the traffic spills) when it
// falls. The order is the service's.
func Gaining(regions []string, region string, from, to int) []string {
	if to >= from {
		return []string{region}
	}
	out := make([]string, 0, len(regions))
	for _, r := range regions {
		if r != region {
			out = append(out, r)
		}
	}
	return out
}

// Advance moves a running shift to its next step at now and returns the
// dial to set; ok is false when the shift is on its last step (Finish it
// instead).
func Advance(sh *state.Shift, now time.Time) (dial int, ok bool) {
	if sh.State != state.ShiftRunning || sh.Step+1 >= len(sh.Steps) {
		return 0, false
	}
	sh.Step++
	sh.StepStarted, sh.Updated = now, now
	return sh.Steps[sh.Step], true
}

// Finish ends a shift whose last step held: it stays at that step's dial.
func Finish(sh *state.Shift, now time.Time, reason string) {
	sh.State, sh.Reason, sh.Updated = state.ShiftDone, reason, now
}

// Rollback ends a shift whose guard was breached and returns the dial to
// restore: the one it started from.
func Rollback(sh *state.Shift, now time.Time, reason string) int {
	sh.State, sh.Reason, sh.Updated = state.ShiftRolledBack, reason, now
	return sh.StartDial
}

// Abort ends a shift on an operator's word and returns the dial to
// restore: the one it started from.
func Abort(sh *state.Shift, now time.Time, reason string) int {
	sh.State, sh.Reason, sh.Updated = state.ShiftAborted, reason, now
	return sh.StartDial
}

// Next says what a verdict means for a running shift: keep holding,
// advance, finish, or roll back.
func Next(sh *state.Shift, v Verdict) Action {
	switch {
	case v.Outcome == Breach:
		return RollBack
	case v.Outcome != Pass:
		return Hold
	case sh.Step+1 < len(sh.Steps):
		return Step
	}
	return Done
}

// Action is the step machine's answer to a verdict.
type Action int

// Actions.
const (
	Hold     Action = iota // keep the step
	Step                   // Advance to the next step
	Done                   // Finish: the last step held
	RollBack               // Rollback to the start dial
)
