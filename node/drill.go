package node

import (
	"fmt"
	"time"

	"github.com/meridian-edge/meridian/shift"
	"github.com/meridian-edge/meridian/state"
)

// Drill limits.
const (
	// DefaultDrillDuration is the duration of a drill that names none.
	DefaultDrillDuration = 2 * time.Minute
	// MaxDrillDuration bounds a drill: a region is not left forced down by
	// a typo.
	MaxDrillDuration = 24 * time.Hour
	// drillSettle is how long before a drill's end traffic must have
	// stopped reaching the region for its RTO to count as measured.
	drillSettle = 500 * time.Millisecond
)

// drillWatch is what a running drill is measured against, in memory: the
// counters when it (or this process) began, and when traffic last went to
// the region.
type drillWatch struct {
	dns, proxied   uint64 // the region's DNS answers and proxied requests, last seen
	base           shift.Counters
	dnsLast, pLast time.Time
}

// StartDrill forces region down in service for d (0: the default), to
// measure how long until traffic stops reaching it and how many requests
// fail meanwhile. The region's override is put back when the drill ends.
func (n *Node) StartDrill(service, region string, d time.Duration, who Actor) (state.Drill, error) {
	if d == 0 {
		d = DefaultDrillDuration
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.view.Load()
	j := v.Policy.Service(service)
	switch {
	case j < 0:
		return state.Drill{}, errorf(ErrNotFound, "unknown service %q", service)
	case region == "":
		return state.Drill{}, errorf(ErrInvalid, "a drill needs a region")
	case !contains(v.Config.Services[j].Regions, region):
		return state.Drill{}, errorf(ErrInvalid, "region %q is not a region of service %q", region, service)
	case d < 0 || d > MaxDrillDuration:
		return state.Drill{}, errorf(ErrInvalid, "duration %s is outside 0..%s", d, MaxDrillDuration)
	}
	for _, dr := range n.st.Drills {
		if dr.State == state.DrillRunning && dr.Region == region {
			return state.Drill{}, errorf(ErrConflict, "drill %s already forces region %s down", dr.ID, region)
		}
	}
	id, err := newFailoverID(n.st)
	if err != nil {
		return state.Drill{}, err
	}
	now := n.now()
	prev := n.st.Overrides[region]
	dr := state.Drill{ID: id, Service: service, Region: region, Duration: d, State: state.DrillRunning,
		Override: prev, Started: now, Token: who.Token}
	w := n.newDrillWatchLocked(&dr)
	err = n.changeLocked(func(s *state.Snapshot) error {
		s.Drills = append(dropEndedDrills(s.Drills), dr)
		if s.Overrides == nil {
			s.Overrides = map[string]state.Override{}
		}
		s.Overrides[region] = state.OverrideDown
		return nil
	}, state.AuditEntry{Token: who.Token, Action: "drill.start", Target: service + "/" + region,
		Old: overrideText(prev), New: "down for " + d.String(), Reason: who.Reason})
	if err != nil {
		return state.Drill{}, err
	}
	n.fo.drills[id] = w
	n.log.Info("drill started", "drill", id, "service", service, "region", region, "duration", d, "token", who.Token)
	return dr, nil
}

func overrideText(o state.Override) string {
	if o == "" {
		return "auto"
	}
	return string(o)
}

// Drills lists a service's drills, newest first.
func (n *Node) Drills(service string) ([]state.Drill, error) {
	v := n.View()
	if v.Policy.Service(service) < 0 {
		return nil, errorf(ErrNotFound, "unknown service %q", service)
	}
	out := []state.Drill{}
	for i := len(v.State.Drills) - 1; i >= 0; i-- {
		if v.State.Drills[i].Service == service {
			out = append(out, v.State.Drills[i])
		}
	}
	return out, nil
}

// newDrillWatchLocked reads the counters a drill is measured against.
func (n *Node) newDrillWatchLocked(dr *state.Drill) *drillWatch {
	w := &drillWatch{dns: n.dns.Answers(dr.Service, dr.Region), proxied: n.RegionStats(dr.Service, dr.Region).Requests}
	w.base = n.serviceStats(dr.Service)
	return w
}

// serviceStats sums the proxied figures of every region of a service.
func (n *Node) serviceStats(service string) shift.Counters {
	var c shift.Counters
	v := n.view.Load()
	if j := v.Policy.Service(service); j >= 0 {
		for _, r := range v.Config.Services[j].Regions {
			c.Add(n.RegionStats(service, r))
		}
	}
	return c
}

// tickDrillsLocked watches running drills and ends those whose time is up.
// n.mu must be held.
func (n *Node) tickDrillsLocked(v *View) {
	now := n.now()
	for _, dr := range n.st.Drills {
		if dr.State != state.DrillRunning {
			continue
		}
		w := n.fo.drills[dr.ID]
		if w == nil { // resumed after a restart: measure from here
			w = n.newDrillWatchLocked(&dr)
			n.fo.drills[dr.ID] = w
		}
		if c := n.dns.Answers(dr.Service, dr.Region); c != w.dns {
			w.dns, w.dnsLast = c, now
		}
		if c := n.RegionStats(dr.Service, dr.Region).Requests; c != w.proxied {
			w.proxied, w.pLast = c, now
		}
		if now.Sub(dr.Started) >= dr.Duration || v.Policy.Service(dr.Service) < 0 {
			n.endDrillLocked(dr, w, now)
		}
	}
}

// endDrillLocked puts the region's override back and records the drill's
// figures.
func (n *Node) endDrillLocked(dr state.Drill, w *drillWatch, now time.Time) {
	last := dr.Started
	for _, t := range []time.Time{w.dnsLast, w.pLast} {
		if t.After(last) {
			last = t
		}
	}
	win := n.serviceStats(dr.Service).Sub(w.base)
	var rto *float64
	outcome := ""
	if now.Sub(last) >= drillSettle || last.Equal(dr.Started) {
		s := last.Sub(dr.Started).Seconds()
		rto = &s
		outcome = fmt.Sprintf("traffic stopped reaching %s after %.3fs; %d of %d requests failed meanwhile",
			dr.Region, s, win.Errors, win.Requests)
	} else {
		outcome = fmt.Sprintf("traffic still reached %s %s before the drill ended; %d of %d requests failed",
			dr.Region, now.Sub(last).Round(time.Millisecond), win.Errors, win.Requests)
	}
	err := n.changeLocked(func(s *state.Snapshot) error {
		p := s.Drill(dr.ID)
		if p == nil || p.State != state.DrillRunning {
			return fmt.Errorf("drill %s is no longer running", dr.ID)
		}
		p.State, p.Ended, p.RTOSeconds, p.Outcome = state.DrillDone, now, rto, outcome
		p.Requests, p.Errors, p.DNSLast, p.ProxLast = win.Requests, win.Errors, w.dnsLast, w.pLast
		if s.Overrides[dr.Region] == state.OverrideDown { // unless an operator changed it meanwhile
			if dr.Override == "" || dr.Override == state.OverrideAuto {
				delete(s.Overrides, dr.Region)
			} else {
				s.Overrides[dr.Region] = dr.Override
			}
		}
		return nil
	}, state.AuditEntry{Token: dr.Token, Action: "drill.done", Target: dr.Service + "/" + dr.Region,
		Old: "down", New: overrideText(dr.Override), Reason: outcome})
	if err != nil {
		n.log.Error("ending a drill; retrying", "drill", dr.ID, "err", err)
		return
	}
	delete(n.fo.drills, dr.ID)
	n.log.Info("drill done", "drill", dr.ID, "service", dr.Service, "region", dr.Region, "outcome", outcome)
}

func dropEndedDrills(list []state.Drill) []state.Drill {
	ended := 0
	for i := range list {
		if list[i].State != state.DrillRunning {
			ended++
		}
	}
	out := make([]state.Drill, 0, len(list)+1)
	for _, d := range list {
		if d.State != state.DrillRunning && ended >= maxEndedFailovers {
			ended--
			continue
		}
		out = append(out, d)
	}
	return out
}
