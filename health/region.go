package health

import (
	"fmt"
	"slices"
	"time"
)

// region is one region's endpoints and its last built state.
type region struct {
	name       string
	minHealthy int
	endpoints  []*endpoint
	state      RegionState
	// logged is the Up state last logged: -1 none yet, 0 down, 1 up.
	logged int8
}

// build recomputes r.state from its endpoints. Checker.mu held.
func (r *region) build() {
	eps := make([]EndpointState, len(r.endpoints))
	healthy := 0
	for k, ep := range r.endpoints {
		eps[k] = ep.state()
		if ep.healthy() {
			healthy++
		}
	}
	r.state = RegionState{
		Name:      r.name,
		Up:        healthy >= r.minHealthy,
		RTT:       regionRTT(eps, r.minHealthy),
		Endpoints: eps,
	}
}

// regionRTT is the mean RTT of the n fastest healthy endpoints with a
// measurement (all of them when fewer): what a region needing n healthy
// endpoints delivers at best. 0 when none has a measurement.
func regionRTT(eps []EndpointState, n int) time.Duration {
	rtts := make([]time.Duration, 0, len(eps))
	for _, e := range eps {
		if e.Up && !e.Ejected && e.RTT > 0 {
			rtts = append(rtts, e.RTT)
		}
	}
	if len(rtts) == 0 {
		return 0
	}
	slices.Sort(rtts)
	rtts = rtts[:min(n, len(rtts))]
	var sum time.Duration
	for _, d := range rtts {
		sum += d
	}
	return sum / time.Duration(len(rtts))
}

// settled reports whether every endpoint of r has had a first result.
func (r *region) settled() bool {
	for _, ep := range r.endpoints {
		if !ep.v.known {
			return false
		}
	}
	return true
}

// refreshLocked rebuilds r, publishes a new snapshot and logs a change of
// the region's state; it reports whether the region's Up changed.
// Checker.mu held.
func (c *Checker) refreshLocked(r *region) bool {
	was := r.state.Up
	r.build()
	c.publishLocked()
	c.logRegion(r)
	return r.state.Up != was
}

// publishLocked swaps in a snapshot of the regions' current states.
// Unchanged regions share their endpoint slices with the previous
// snapshot. Checker.mu held.
func (c *Checker) publishLocked() {
	regs := make([]RegionState, len(c.regions))
	for i, r := range c.regions {
		regs[i] = r.state
	}
	c.snap.Store(&Snapshot{Regions: regs})
}

// logRegion logs r's Up state when it differs from the last one logged. A
// region that starts down is logged once all its endpoints have a result.
func (c *Checker) logRegion(r *region) {
	var now int8
	if r.state.Up {
		now = 1
	}
	if now == r.logged || (!r.state.Up && r.logged < 0 && !r.settled()) {
		return
	}
	r.logged = now
	healthy := 0
	for _, e := range r.state.Endpoints {
		if e.Up && !e.Ejected {
			healthy++
		}
	}
	reason := fmt.Sprintf("%d of %d endpoints healthy, min_healthy %d", healthy, len(r.endpoints), r.minHealthy)
	if r.state.Up {
		c.log.Info("region up", "region", r.name, "reason", reason)
	} else {
		c.log.Warn("region down", "region", r.name, "reason", reason)
	}
}
