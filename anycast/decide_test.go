package anycast

import (
	"testing"
	"time"
)

// TestDecider walks rise, fall and hold-down on a pinned clock.
func TestDecider(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at      time.Duration // since t0
		ok      *bool         // a round's result; nil: only ask fit
		wantFit bool
		wantWhy string
	}
	pass, fail := true, false
	steps := []step{
		{at: 0, ok: &pass, wantFit: false, wantWhy: "self-check not passed yet"},
		{at: 1 * time.Second, ok: &pass, wantFit: true},                                        // rise 2
		{at: 2 * time.Second, ok: &fail, wantFit: true},                                        // 1 of fall 3
		{at: 3 * time.Second, ok: &fail, wantFit: true},                                        // 2 of 3
		{at: 4 * time.Second, ok: &pass, wantFit: true},                                        // resets the failures
		{at: 5 * time.Second, ok: &fail, wantFit: true},                                        // 1 of 3
		{at: 6 * time.Second, ok: &fail, wantFit: true},                                        // 2 of 3
		{at: 7 * time.Second, ok: &fail, wantFit: false, wantWhy: "self-check failing"},        // fall: withdraw
		{at: 8 * time.Second, ok: &pass, wantFit: false, wantWhy: "self-check not passed yet"}, // 1 of rise 2
		{at: 9 * time.Second, ok: &pass, wantFit: false, wantWhy: "hold-down after self-check failures"},
		{at: 12 * time.Second, ok: &fail, wantFit: false, wantWhy: "hold-down after self-check failures"}, // restarts it
		{at: 13 * time.Second, ok: &pass, wantFit: false, wantWhy: "hold-down after self-check failures"},
		{at: 21 * time.Second, ok: nil, wantFit: false, wantWhy: "hold-down after self-check failures"},
		{at: 22 * time.Second, ok: nil, wantFit: true},
		{at: 23 * time.Second, ok: &fail, wantFit: true}, // healthy, no hold-down: one failure is below fall
	}
	d := newDecider(2, 3, 10*time.Second)
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.ok != nil {
			d.observe(*s.ok, now)
		}
		fit, why, _ := d.fit(now)
		if fit != s.wantFit || why != s.wantWhy {
			t.Fatalf("step %d (t=%v): got fit %v %q, want %v %q", i, s.at, fit, why, s.wantFit, s.wantWhy)
		}
	}
}
