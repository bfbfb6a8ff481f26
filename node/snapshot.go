package node

import (
	"fmt"
	"strings"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/dnsserver"
	"github.com/meridian-edge/meridian/fleet"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/policy"
	"github.com/meridian-edge/meridian/proxy"
	"github.com/meridian-edge/meridian/state"
)

// View is what the node published last: everything a decision, a status
// read or an explanation needs, immutable.
type View struct {
	Config     *config.Config
	Generation uint64
	Geo        *geo.DB
	Policy     *policy.Snapshot
	Health     *health.Snapshot
	State      state.Snapshot
	// Degraded per service index: a region of the service is down or
	// forced, or a shift runs on it.
	Degraded []bool
	// Fleet is the fleet's view of every region (config order); nil for a
	// node alone or while the member list is stale.
	Fleet []fleet.Verdict
	// DNSPolicy is what DNS answers use: Policy with each region's health
	// replaced by the fleet's verdict under fleet.health quorum; Policy
	// itself otherwise.
	DNSPolicy *policy.Snapshot
}

// View returns the current view; nil before Start.
func (n *Node) View() *View { return n.view.Load() }

// rebuildLocked builds a new policy snapshot from the config, the health
// snapshot and the operator state, hands it to the DNS server and the
// proxy, and publishes it. n.mu must be held.
func (n *Node) rebuildLocked() error {
	cfg := n.cfg
	hs := n.health.Snapshot()
	v := &View{Config: cfg, Generation: n.gen, Geo: n.geo, Health: hs, State: n.st}

	regions := make([]policy.Region, len(cfg.Regions))
	for i, r := range cfg.Regions {
		pr := policy.Region{Name: r.Name, Up: true, Override: override(n.st.Overrides[r.Name])}
		if r.Location != nil {
			pr.Location = policy.Point{Lat: r.Location.Lat, Lon: r.Location.Lon, Valid: true}
		}
		if hs != nil && i < len(hs.Regions) {
			pr.Up = hs.Regions[i].Up
			pr.RTT = hs.Regions[i].RTT
		}
		regions[i] = pr
	}
	running := runningShifts(n.st)
	services := make([]policy.Service, len(cfg.Services))
	v.Degraded = make([]bool, len(cfg.Services))
	for j := range cfg.Services {
		s := &cfg.Services[j]
		ps, err := n.policyService(cfg, s, regions)
		if err != nil {
			return err
		}
		services[j] = ps
		for _, ri := range ps.Regions {
			if !regions[ri].Up || regions[ri].Override != policy.Auto {
				v.Degraded[j] = true
			}
		}
		if running[s.Name] {
			v.Degraded[j] = true
		}
	}
	var node policy.Point
	if cfg.Node.Location != nil {
		node = policy.Point{Lat: cfg.Node.Location.Lat, Lon: cfg.Node.Location.Lon, Valid: true}
	}
	ps, err := policy.NewSnapshot(regions, services, node)
	if err != nil {
		return fmt.Errorf("building policy snapshot: %w", err)
	}
	v.Policy, v.DNSPolicy = ps, ps
	v.Fleet = n.fleetVerdicts(regions)
	if dr, differs := n.dnsRegions(regions, v.Fleet); differs {
		if v.DNSPolicy, err = policy.NewSnapshot(dr, services, node); err != nil {
			return fmt.Errorf("building the fleet's policy snapshot: %w", err)
		}
	}
	if err := n.dns.Update(dnsserver.Input{Config: cfg, Geo: n.geo, Policy: v.DNSPolicy, Health: hs, Degraded: v.Degraded}); err != nil {
		return fmt.Errorf("updating dns answers: %w", err)
	}
	if err := n.proxy.Update(proxy.Input{Config: cfg, Geo: n.geo, Policy: ps, Health: hs, Degraded: v.Degraded}); err != nil {
		return fmt.Errorf("updating proxy routes: %w", err)
	}
	if old := n.view.Load(); old != nil && n.health.Ready() {
		logFailOpen(n, old, v)
	}
	n.view.Store(v)
	n.trackRegionsLocked(v)
	return nil
}

// policyService turns one configured service into its policy form, with
// dials from operator state over the config's initial dials.
func (n *Node) policyService(cfg *config.Config, s *config.Service, regions []policy.Region) (policy.Service, error) {
	kind, err := policy.ParseKind(s.Policy)
	if err != nil {
		return policy.Service{}, fmt.Errorf("service %q: %w", s.Name, err)
	}
	ps := policy.Service{
		Name:       s.Name,
		Kind:       kind,
		FailClosed: s.AllDown == "nodata",
		Salt:       policy.HashString(s.Salt),
	}
	if s.Mode == "proxy" {
		ps.Mode = policy.ModeProxy
	}
	pos := map[string]int{}
	for _, name := range s.Regions {
		idx := regionIndex(cfg, name)
		if idx < 0 {
			return policy.Service{}, fmt.Errorf("service %q: unknown region %q", s.Name, name)
		}
		pos[name] = len(ps.Regions)
		ps.Regions = append(ps.Regions, idx)
		ps.Dials = append(ps.Dials, n.dial(s, name))
	}
	for _, g := range s.Geo {
		r := policy.Rule{Fence: g.Fence}
		for _, m := range g.Match {
			r.Match = append(r.Match, strings.ToUpper(m))
		}
		for _, name := range g.Regions {
			p, ok := pos[name]
			if !ok {
				return policy.Service{}, fmt.Errorf("service %q: geo rule region %q not in the service's regions", s.Name, name)
			}
			r.Regions = append(r.Regions, p)
		}
		ps.Rules = append(ps.Rules, r)
	}
	if s.Writes != nil || s.Failover != nil {
		ps.Writer, ps.HasWriter = regionIndex(cfg, n.writer(s)), true
		if ps.Writer < 0 {
			ps.Writer, ps.HasWriter = 0, false
		}
	}
	if ps.Mode == policy.ModeProxy && kind == policy.Latency {
		rtt := make([]float64, len(ps.Regions))
		known := false
		for p, ri := range ps.Regions {
			rtt[p] = regions[ri].RTT.Seconds()
			known = known || rtt[p] > 0
		}
		if known {
			ps.RTTOrder = policy.RankByRTT(n.rttPrev[s.Name], rtt)
			n.rttPrev[s.Name] = ps.RTTOrder
		}
	}
	return ps, nil
}

// dial is a region's effective dial in a service: operator state first,
// then the config's initial dial.
func (n *Node) dial(s *config.Service, region string) int {
	if d, ok := n.st.Dials[s.Name][region]; ok {
		return d
	}
	return s.DialFor(region)
}

func override(o state.Override) policy.Override {
	switch o {
	case "up":
		return policy.ForceUp
	case "down":
		return policy.ForceDown
	}
	return policy.Auto
}

func runningShifts(st state.Snapshot) map[string]bool {
	out := map[string]bool{}
	for _, s := range st.Shifts {
		if s.State == "running" {
			out[s.Service] = true
		}
	}
	return out
}

// logFailOpen logs once when a service starts or stops failing open.
func logFailOpen(n *Node, old, cur *View) {
	for j := range cur.Policy.Services {
		was, is := allDown(old, j), allDown(cur, j)
		if was != is && j < len(old.Policy.Services) && old.Policy.Services[j].Name == cur.Policy.Services[j].Name {
			if is {
				n.log.Warn("no region eligible; failing open", "service", cur.Policy.Services[j].Name)
			} else {
				n.log.Info("a region is eligible again", "service", cur.Policy.Services[j].Name)
			}
		}
	}
}

func allDown(v *View, j int) bool {
	if j >= len(v.Policy.Services) {
		return false
	}
	s := &v.Policy.Services[j]
	for p, ri := range s.Regions {
		r := &v.Policy.Regions[ri]
		if s.Dials[p] > 0 && r.Override != policy.ForceDown && (r.Up || r.Override == policy.ForceUp) {
			return false
		}
	}
	return true
}

func regionIndex(cfg *config.Config, name string) int {
	for i := range cfg.Regions {
		if cfg.Regions[i].Name == name {
			return i
		}
	}
	return -1
}

func regionNames(cfg *config.Config) []string {
	out := make([]string, len(cfg.Regions))
	for i, r := range cfg.Regions {
		out[i] = r.Name
	}
	return out
}

func serviceRegions(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for _, s := range cfg.Services {
		out[s.Name] = s.Regions
	}
	return out
}
