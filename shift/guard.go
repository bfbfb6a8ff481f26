package shift

import (
	"fmt"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/state"
)

// Guard defaults, applied where a state.Guard leaves a field at zero.
const (
	// DefaultMinRequests is how many requests a step's window needs before
	// the guard judges it without waiting longer.
	DefaultMinRequests = 100
	// DefaultMaxWaitHolds is max_wait in holds: a step that has not seen
	// min_requests by then is judged on what it has.
	DefaultMaxWaitHolds = 4
	// GuardQuantile is the latency quantile compared with max_p95.
	GuardQuantile = 0.95
)

// WithDefaults returns g with zero MinRequests and MaxWait replaced by
// their defaults for a shift holding each step for hold. A zero
// MaxErrorRatio or MaxP95 stays zero: that limit is not checked.
func WithDefaults(g state.Guard, hold time.Duration) state.Guard {
	if g.MinRequests == 0 {
		g.MinRequests = DefaultMinRequests
	}
	if g.MaxWait == 0 {
		g.MaxWait = DefaultMaxWaitHolds * hold
	}
	return g
}

// Outcome is what a guard makes of a step so far.
type Outcome int

// Outcomes.
const (
	Wait   Outcome = iota // keep holding the step
	Pass                  // the step held: move on
	Breach                // a limit was exceeded: roll back
)

func (o Outcome) String() string {
	switch o {
	case Wait:
		return "wait"
	case Pass:
		return "pass"
	case Breach:
		return "breach"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Verdict is a guard's judgement of a step with the figures it rests on.
type Verdict struct {
	Outcome    Outcome
	Requests   uint64
	ErrorRatio float64
	P95        time.Duration
	Reason     string
}

// Judge judges a step of a proxy-mode shift that has held for elapsed,
// whose gaining regions answered w since the step began:
//
//   - With at least min_requests in w and a limit exceeded — the error
//     ratio above max_error_ratio, or the p95 above max_p95 (each checked
//     only when set) — it is a Breach, even before hold has elapsed: a
//     step that is clearly failing is not held to the end.
//   - Before hold has elapsed it is Wait.
//   - After hold, with fewer than min_requests, it is Wait until max_wait
//     has elapsed; then the step is judged on what there is, and a window
//     without a single request is a Pass whose reason says nothing was
//     measured.
//   - Otherwise a limit exceeded is a Breach, and all within is a Pass.
func Judge(g state.Guard, hold, elapsed time.Duration, w Window) Verdict {
	g = WithDefaults(g, hold)
	v := Verdict{Requests: w.Requests, ErrorRatio: w.ErrorRatio(), P95: w.Quantile(GuardQuantile)}
	enough := w.Requests >= uint64(max(g.MinRequests, 0)) //nolint:gosec // G115: not negative
	breaches := breaches(g, v)
	switch {
	case enough && len(breaches) > 0:
		v.Outcome = Breach
		v.Reason = "guard breached after " + round(elapsed).String() + ": " + strings.Join(breaches, "; ")
	case elapsed < hold:
		v.Outcome = Wait
		v.Reason = fmt.Sprintf("holding: %s of %s, %d requests so far", round(elapsed), hold, w.Requests)
	case !enough && elapsed < g.MaxWait:
		v.Outcome = Wait
		v.Reason = fmt.Sprintf("waiting for traffic: %d of %d requests after %s; judging by %s at the latest",
			w.Requests, g.MinRequests, round(elapsed), g.MaxWait)
	case w.Requests == 0:
		v.Outcome = Pass
		v.Reason = fmt.Sprintf("passed unmeasured: no requests reached the gaining regions in %s (max_wait)", g.MaxWait)
	case len(breaches) > 0:
		v.Outcome = Breach
		v.Reason = fmt.Sprintf("guard breached on %d requests (fewer than %d by max_wait %s): %s",
			w.Requests, g.MinRequests, g.MaxWait, strings.Join(breaches, "; "))
	default:
		v.Outcome = Pass
		v.Reason = fmt.Sprintf("passed: %d requests, %s", w.Requests, figures(g, v))
		if !enough {
			v.Reason = fmt.Sprintf("passed on %d requests (fewer than %d by max_wait %s): %s",
				w.Requests, g.MinRequests, g.MaxWait, figures(g, v))
		}
	}
	return v
}

// breaches lists the limits v exceeds, with the figures.
func breaches(g state.Guard, v Verdict) []string {
	var out []string
	if g.MaxErrorRatio > 0 && v.ErrorRatio > g.MaxErrorRatio {
		out = append(out, fmt.Sprintf("error ratio %s over %d requests exceeds max_error_ratio %s",
			percent(v.ErrorRatio), v.Requests, percent(g.MaxErrorRatio)))
	}
	if g.MaxP95 > 0 && v.P95 > g.MaxP95 {
		out = append(out, fmt.Sprintf("p95 %s over %d requests exceeds max_p95 %s", round(v.P95), v.Requests, g.MaxP95))
	}
	return out
}

// figures describes a passing window.
func figures(g state.Guard, v Verdict) string {
	s := "error ratio " + percent(v.ErrorRatio)
	if g.MaxErrorRatio > 0 {
		s += " (max " + percent(g.MaxErrorRatio) + ")"
	}
	s += ", p95 " + round(v.P95).String()
	if g.MaxP95 > 0 {
		s += " (max " + g.MaxP95.String() + ")"
	}
	return s
}

func percent(r float64) string { return fmt.Sprintf("%.2f%%", r*100) }

// round shortens a measured duration for a reason.
func round(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}

// RegionHealth is a gaining region's health for a dns-mode guard: whether
// it serves now, and whether it served when the step began.
type RegionHealth struct {
	Name  string
	Up    bool
	WasUp bool
}

// JudgeHealth judges a step of a dns-mode shift, whose traffic the node
// cannot measure, by the health of its gaining regions: a gaining region
// that was up when the step began and is down now, or no gaining region
// up at all, is a Breach at once; otherwise the step is a Wait until hold
// has elapsed, then a Pass.
func JudgeHealth(hold, elapsed time.Duration, regions []RegionHealth) Verdict {
	var down, went []string
	for _, r := range regions {
		if !r.Up {
			down = append(down, r.Name)
			if r.WasUp {
				went = append(went, r.Name)
			}
		}
	}
	switch {
	case len(went) > 0:
		return Verdict{Outcome: Breach, Reason: "guard breached after " + round(elapsed).String() +
			": gaining region(s) " + strings.Join(went, ", ") + " went down"}
	case len(regions) > 0 && len(down) == len(regions):
		return Verdict{Outcome: Breach, Reason: "guard breached: no gaining region is up (" + strings.Join(down, ", ") + ")"}
	case elapsed < hold:
		return Verdict{Outcome: Wait, Reason: fmt.Sprintf("holding: %s of %s", round(elapsed), hold)}
	}
	up := make([]string, 0, len(regions))
	for _, r := range regions {
		if r.Up {
			up = append(up, r.Name)
		}
	}
	return Verdict{Outcome: Pass, Reason: "passed: gaining region(s) " + strings.Join(up, ", ") + " stayed up for " + hold.String()}
}

// JudgeProxy judges a step of a proxy-mode shift: Judge on the gaining
// regions' window, except that a gaining region that went down since the
// step began — its probes failed, or the proxy ejected its endpoints for
// failing requests, which stops the window from growing — or no gaining
// region up at all is a Breach at once, reported with the window's
// figures.
func JudgeProxy(g state.Guard, hold, elapsed time.Duration, w Window, regions []RegionHealth) Verdict {
	v := Judge(g, hold, elapsed, w)
	if v.Outcome == Breach {
		return v
	}
	if h := JudgeHealth(hold, elapsed, regions); h.Outcome == Breach {
		v.Outcome = Breach
		v.Reason = fmt.Sprintf("%s (measured: %d requests, %s)", h.Reason, v.Requests, figures(state.Guard{}, v))
	}
	return v
}
