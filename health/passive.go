package health

import (
	"fmt"
	"time"
)

// Passive ejection (SPEC §5): an endpoint whose proxied requests keep
// failing is taken out of service for a while, independently of its probes.
const (
	// ejectAfterErrors consecutive error outcomes eject an endpoint.
	ejectAfterErrors = 5
	// ejectBase is the first ejection's length; each repeat doubles it.
	ejectBase = 30 * time.Second
	// ejectMax caps an ejection's length.
	ejectMax = 5 * time.Minute
	// ejectForgetAfter is how long an endpoint must stay out of ejection
	// for the next ejection to count as a first one again.
	ejectForgetAfter = 5 * time.Minute
)

// Outcome is the result of one proxied request to an endpoint.
type Outcome uint8

// Request outcomes. Every outcome but OutcomeSuccess is an error.
const (
	OutcomeSuccess        Outcome = iota
	OutcomeConnectFailure         // the connection could not be made
	OutcomeTimeout                // no (complete) answer in time
	Outcome5xx                    // the endpoint answered with a 5xx status
)

var outcomeNames = [...]string{"success", "connect failure", "timeout", "5xx"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", o)
}

// Reporter takes the outcomes of proxied requests per endpoint, indexed as
// the configuration given to the checker (region i, endpoint k).
type Reporter interface {
	Report(region, endpoint int, o Outcome)
}

var _ Reporter = (*Checker)(nil)

// Report records the outcome of one proxied request to endpoint k of
// region i. It is cheap and safe from many goroutines: a success or an
// error below the threshold touches one atomic counter of the endpoint;
// only the error that crosses the threshold takes the checker's lock to
// eject. Indexes out of range (a request that straddled a reload) are
// ignored.
func (c *Checker) Report(region, endpoint int, o Outcome) {
	tab := c.table.Load()
	if tab == nil || region < 0 || region >= len(*tab) {
		return
	}
	eps := (*tab)[region]
	if endpoint < 0 || endpoint >= len(eps) {
		return
	}
	ep := eps[endpoint]
	switch o {
	case OutcomeSuccess:
		if ep.errs.Load() != 0 {
			ep.errs.Store(0)
		}
		return
	case OutcomeConnectFailure, OutcomeTimeout, Outcome5xx:
	default:
		return
	}
	if ep.ejected.Load() {
		return
	}
	if ep.errs.Add(1) == ejectAfterErrors {
		c.eject(ep, o)
	}
}

// eject takes ep out of service after ejectAfterErrors consecutive errors,
// the last being o.
func (c *Checker) eject(ep *endpoint, o Outcome) {
	c.mu.Lock()
	ep.errs.Store(0)
	if ep.removed || ep.ej.ejected {
		c.mu.Unlock()
		return
	}
	now := c.now()
	d := ep.ej.eject(now)
	ep.ejected.Store(true)
	c.log.Warn("endpoint ejected", "region", ep.t.region, "endpoint", ep.t.name,
		"reason", fmt.Sprintf("%d consecutive errors, last: %s", ejectAfterErrors, o),
		"for", d, "until", ep.ej.until, "ejections", ep.ej.count)
	c.refreshLocked(ep.region)
	if ep.prober == nil {
		c.startLocked(ep) // nothing probes it: a goroutine ends the ejection
	}
	c.mu.Unlock()
	c.changed()
}

// ejection is the passive state of one endpoint. Its methods take the
// time, so that its rules are tested without a clock.
type ejection struct {
	ejected    bool
	until      time.Time // end of the current or last ejection
	count      int       // ejections since the endpoint was last forgiven
	releasedAt time.Time // when the last ejection ended; zero if never
}

// eject starts an ejection at now and returns its length: ejectBase,
// doubled for each earlier ejection not yet forgotten, at most ejectMax.
// An endpoint that stayed out of ejection for ejectForgetAfter starts
// again from ejectBase.
func (e *ejection) eject(now time.Time) time.Duration {
	if e.count > 0 && !e.releasedAt.IsZero() && now.Sub(e.releasedAt) >= ejectForgetAfter {
		e.count = 0
	}
	d := ejectBase
	for i := 0; i < e.count && d < ejectMax; i++ {
		d *= 2
	}
	d = min(d, ejectMax)
	e.count++
	e.ejected = true
	e.until = now.Add(d)
	return d
}

// release ends the ejection if its period is over at now and the
// endpoint passed a check (a probe, or for endpoints without probes,
// nothing); it reports whether it did.
func (e *ejection) release(now time.Time, passed bool) bool {
	if !e.ejected || !passed || now.Before(e.until) {
		return false
	}
	e.ejected = false
	e.releasedAt = now
	return true
}
