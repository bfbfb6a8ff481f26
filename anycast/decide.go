package anycast

import "time"

// decider turns self-check results into "fit to announce", with rise and
// fall counts and a hold-down. It does no I/O and reads no clock.
type decider struct {
	rise, fall int
	holdDown   time.Duration

	passes, fails int
	healthy       bool      // rise passes seen since the last fall
	lastFail      time.Time // last failed round while unhealthy or held down; zero when none
}

func newDecider(rise, fall int, holdDown time.Duration) *decider {
	return &decider{rise: max(rise, 1), fall: max(fall, 1), holdDown: holdDown}
}

// observe records one self-check round. A node starts unhealthy: it
// needs rise passes before its first announcement.
func (d *decider) observe(ok bool, now time.Time) {
	if ok {
		d.passes++
		d.fails = 0
		if d.passes >= d.rise {
			d.healthy = true
		}
		return
	}
	d.fails++
	d.passes = 0
	if d.fails >= d.fall {
		d.healthy = false
	}
	// A failure while unhealthy, or while a hold-down runs, starts the
	// hold-down again: a flapping node stays withdrawn.
	if !d.healthy || d.holding(now) {
		d.lastFail = now
	}
}

// fit reports whether the self-check allows an announcement at now; when
// it does not, why, and until when a hold-down lasts (zero if none).
func (d *decider) fit(now time.Time) (ok bool, why string, until time.Time) {
	switch {
	case !d.healthy && d.fails >= d.fall:
		return false, "self-check failing", time.Time{}
	case !d.healthy:
		return false, "self-check not passed yet", time.Time{}
	case d.holding(now):
		return false, "hold-down after self-check failures", d.lastFail.Add(d.holdDown)
	}
	return true, "", time.Time{}
}

// holding reports whether a hold-down runs at now.
func (d *decider) holding(now time.Time) bool {
	return !d.lastFail.IsZero() && now.Sub(d.lastFail) < d.holdDown
}
