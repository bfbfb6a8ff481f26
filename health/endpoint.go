package health

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// rttAlpha is the weight of a new sample in an endpoint's RTT EWMA:
	// about the last three probes dominate.
	rttAlpha = 0.3
	// intervalJitter spreads probes of one endpoint by ±10% of the
	// interval, so endpoints started together drift apart.
	intervalJitter = 0.1
)

// endpoint is one checked endpoint. Its goroutine runs probes; Report and
// the snapshot builder share its state.
type endpoint struct {
	t      target
	prober prober // nil for health type none and invalid endpoints
	// counters are the checks metric's children, by class; nil entries
	// without a registry.
	counters [len(classNames)]prometheus.Counter

	// Lock-free, for Report.
	errs    atomic.Int32 // consecutive passive errors
	ejected atomic.Bool  // mirrors ej.ejected

	// Guarded by Checker.mu.
	region     *region
	v          verdict
	ej         ejection
	rtt        time.Duration
	lastCheck  time.Time
	lastResult string
	// cancel stops the endpoint's goroutine: its probes, or for an
	// endpoint without probes the wait for its ejection to end. nil while
	// none runs.
	cancel  context.CancelFunc
	removed bool
}

func newEndpoint(t target, p prober) *endpoint {
	ep := &endpoint{t: t, prober: p}
	switch t.kind {
	case kindNone:
		ep.v = verdict{known: true, up: true}
	case kindInvalid:
		ep.v = verdict{known: true, up: false}
		ep.lastResult = t.invalid
	}
	return ep
}

// state is the endpoint's view for a snapshot. Called with Checker.mu held.
func (ep *endpoint) state() EndpointState {
	s := EndpointState{
		Name:       ep.t.name,
		Up:         ep.v.up,
		Ejected:    ep.ej.ejected,
		RTT:        ep.rtt,
		LastCheck:  ep.lastCheck,
		LastResult: ep.lastResult,
	}
	if s.Ejected {
		s.Until = ep.ej.until
	}
	return s
}

// done releases the context of the endpoint's goroutine. Checker.mu held.
func (ep *endpoint) done() {
	if ep.cancel != nil {
		ep.cancel()
		ep.cancel = nil
	}
}

// healthy reports whether the endpoint may take traffic. Checker.mu held.
func (ep *endpoint) healthy() bool { return ep.v.up && !ep.ej.ejected }

// verdict turns probe results into up or down with rise/fall thresholds.
// Until the first result an endpoint is down; the first result sets the
// state at once, later ones need rise passes or fall failures in a row.
type verdict struct {
	known  bool
	up     bool
	passes int // consecutive
	fails  int // consecutive
}

// observe records one result and reports whether up changed.
func (v *verdict) observe(pass bool, rise, fall int) bool {
	was := v.up
	if pass {
		v.passes++
		v.fails = 0
	} else {
		v.fails++
		v.passes = 0
	}
	switch {
	case !v.known:
		v.known = true
		v.up = pass
	case pass && v.passes >= rise:
		v.up = true
	case !pass && v.fails >= fall:
		v.up = false
	}
	return v.up != was
}

// ewma folds sample into the average avg (0 = no average yet).
func ewma(avg, sample time.Duration) time.Duration {
	if avg == 0 {
		return sample
	}
	return time.Duration(rttAlpha*float64(sample) + (1-rttAlpha)*float64(avg))
}

// firstDelay spreads the first probes of many endpoints over one interval.
func firstDelay(interval time.Duration) time.Duration {
	return rand.N(interval) //nolint:gosec // G404: jitter needs no secrecy
}

// jittered is interval ± intervalJitter.
func jittered(interval time.Duration) time.Duration {
	j := time.Duration(float64(interval) * intervalJitter)
	if j <= 0 {
		return interval
	}
	return interval - j + rand.N(2*j+1) //nolint:gosec // G404: jitter needs no secrecy
}

// runProbes probes ep every interval until ctx ends.
func (c *Checker) runProbes(ctx context.Context, ep *endpoint) {
	timer := time.NewTimer(firstDelay(ep.t.interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		res := ep.prober.probe(ctx)
		if ctx.Err() != nil {
			return // stopped or removed: the result means nothing
		}
		c.apply(ep, res)
		timer.Reset(max(0, jittered(ep.t.interval)-time.Since(start)))
	}
}

// runExpiry ends the ejection of an endpoint without probes once its
// period is over, looking at least every interval so that a clock that
// jumps is noticed. It returns when the ejection ends.
func (c *Checker) runExpiry(ctx context.Context, ep *endpoint) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait, ejected := c.expire(ep)
		if !ejected {
			return
		}
		timer.Reset(min(wait, ep.t.interval))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// apply records a probe result and publishes the new state.
func (c *Checker) apply(ep *endpoint, res result) {
	if ctr := ep.counters[res.class]; ctr != nil {
		ctr.Inc()
	}
	c.mu.Lock()
	if ep.removed {
		c.mu.Unlock()
		return
	}
	now := c.now()
	first := !ep.v.known
	changed := ep.v.observe(res.pass(), ep.t.rise, ep.t.fall)
	ep.lastCheck, ep.lastResult = now, res.text
	if res.pass() {
		ep.rtt = ewma(ep.rtt, res.rtt)
	}
	released := ep.ej.release(now, res.pass())
	if released {
		ep.ejected.Store(false)
		ep.errs.Store(0)
	}
	if first {
		c.pending--
		c.checkReadyLocked()
	}
	c.logVerdict(ep, first, changed, res)
	if released {
		c.log.Info("endpoint ejection ended", "region", ep.t.region, "endpoint", ep.t.name,
			"reason", "ejection period over and probe passed")
	}
	regionChanged := c.refreshLocked(ep.region)
	c.mu.Unlock()
	if changed || released || regionChanged {
		c.changed()
	}
}

// expire ends ep's ejection if its period is over; it returns how long the
// ejection still lasts and whether it does. For endpoints without probes;
// when it returns false the caller's goroutine is done.
func (c *Checker) expire(ep *endpoint) (time.Duration, bool) {
	c.mu.Lock()
	if ep.removed || !ep.ej.ejected {
		ep.done()
		c.mu.Unlock()
		return 0, false
	}
	now := c.now()
	if !ep.ej.release(now, true) {
		wait := ep.ej.until.Sub(now)
		c.mu.Unlock()
		return wait, true
	}
	ep.done()
	ep.ejected.Store(false)
	ep.errs.Store(0)
	c.log.Info("endpoint ejection ended", "region", ep.t.region, "endpoint", ep.t.name,
		"reason", "ejection period over")
	c.refreshLocked(ep.region)
	c.mu.Unlock()
	c.changed()
	return 0, false
}

// logVerdict logs an endpoint's probe verdict when it changes, once.
func (c *Checker) logVerdict(ep *endpoint, first, changed bool, res result) {
	attrs := []any{"region", ep.t.region, "endpoint", ep.t.name, "result", res.text}
	switch {
	case first && ep.v.up:
		c.log.Debug("endpoint up", append(attrs, "reason", "first probe passed")...)
	case first:
		c.log.Warn("endpoint down", append(attrs, "reason", "first probe failed: "+res.text)...)
	case changed && ep.v.up:
		c.log.Info("endpoint up", append(attrs, "reason", fmt.Sprintf("%d consecutive passes", ep.v.passes))...)
	case changed:
		c.log.Warn("endpoint down", append(attrs,
			"reason", fmt.Sprintf("%d consecutive failures, last: %s", ep.v.fails, res.text))...)
	}
}
