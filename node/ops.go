package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/anycast"
	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/fleet"
	"github.com/meridian-edge/meridian/internal/version"
	"github.com/meridian-edge/meridian/policy"
	"github.com/meridian-edge/meridian/replica"
	"github.com/meridian-edge/meridian/state"
)

// ServiceView is a service as the admin API shows it.
type ServiceView struct {
	Name      string              `json:"name"`
	Hostnames []string            `json:"hostnames"`
	Mode      string              `json:"mode"`
	Policy    string              `json:"policy"`
	Degraded  bool                `json:"degraded"`
	Regions   []ServiceRegionView `json:"regions"`
	ETag      string              `json:"etag"`
	// Writer is the writes primary of a service with writes or failover
	// settings.
	Writer string `json:"writer,omitempty"`
}

// ServiceRegionView is one region of a service.
type ServiceRegionView struct {
	Name     string `json:"name"`
	Dial     int    `json:"dial"`
	Up       bool   `json:"up"`
	Override string `json:"override"`
	Eligible bool   `json:"eligible"`
}

// RegionView is a region's health as the admin API shows it.
type RegionView struct {
	Name      string         `json:"name"`
	Up        bool           `json:"up"`
	Override  string         `json:"override"`
	Effective bool           `json:"effective_up"`
	RTTMillis float64        `json:"rtt_ms"`
	Endpoints []EndpointView `json:"endpoints"`
	// Fleet is the fleet's view of the region, which DNS answers use
	// under fleet.health quorum; absent for a node alone.
	Fleet *fleet.Verdict `json:"fleet,omitempty"`
	// Replica is the region's replica lag, for regions with
	// replication.lag_url; Known is false while it cannot be read.
	Replica *replica.Lag `json:"replica,omitempty"`
}

// EndpointView is one endpoint's last check.
type EndpointView struct {
	Endpoint   string    `json:"endpoint"`
	Up         bool      `json:"up"`
	Ejected    bool      `json:"ejected,omitempty"`
	RTTMillis  float64   `json:"rtt_ms"`
	LastCheck  time.Time `json:"last_check"`
	LastResult string    `json:"last_result"`
}

// StatusView is the node's status.
type StatusView struct {
	Node       string       `json:"node"`
	Version    string       `json:"version"`
	Uptime     string       `json:"uptime"`
	Generation uint64       `json:"config_generation"`
	Ready      bool         `json:"ready"`
	Geo        string       `json:"geoip"`
	Regions    []RegionView `json:"regions"`
	State      StateView    `json:"state"`
	Health     string       `json:"fleet_health"` // fleet.health: local or quorum

	// Drained is set while an operator has drained this node.
	Drained *DrainView `json:"drained,omitempty"`
	// BGP is the anycast state: sessions, prefixes, self-check; absent
	// without a bgp section.
	BGP *anycast.Status `json:"bgp,omitempty"`
}

// Status describes the node and every region.
func (n *Node) Status() StatusView {
	v := n.View()
	sv := StatusView{
		Node:       v.Config.Node.Name,
		Version:    version.Version,
		Uptime:     n.now().Sub(n.started).Round(time.Second).String(),
		Generation: v.Generation,
		Ready:      n.Ready(),
		State:      n.StateStatus(),
		Health:     v.Config.Fleet.Health,
	}
	if v.Geo != nil {
		sv.Geo = v.Geo.Description()
	}
	for i := range v.Config.Regions {
		rv := regionView(v, i)
		if name := v.Config.Regions[i].Name; n.fo.replicas.Has(name) {
			lag := n.fo.replicas.Lag(name)
			rv.Replica = &lag
		}
		sv.Regions = append(sv.Regions, rv)
	}
	if dv := n.drainView(); dv.Drained {
		sv.Drained = &dv
	}
	sv.BGP = n.anycastStatus()
	return sv
}

func regionView(v *View, i int) RegionView {
	cr := &v.Config.Regions[i]
	pr := &v.Policy.Regions[i]
	rv := RegionView{
		Name:      cr.Name,
		Up:        pr.Up,
		Override:  pr.Override.String(),
		Effective: pr.Override == policy.ForceUp || (pr.Override == policy.Auto && pr.Up),
		RTTMillis: ms(pr.RTT),
	}
	if i < len(v.Fleet) {
		f := v.Fleet[i]
		rv.Fleet = &f
	}
	for k, e := range cr.Endpoints {
		ev := EndpointView{Endpoint: endpointName(e.URL, e.Address, e.Hostname), Up: true}
		if v.Health != nil && i < len(v.Health.Regions) && k < len(v.Health.Regions[i].Endpoints) {
			es := v.Health.Regions[i].Endpoints[k]
			ev.Up, ev.Ejected, ev.RTTMillis = es.Up, es.Ejected, ms(es.RTT)
			ev.LastCheck, ev.LastResult = es.LastCheck, es.LastResult
		}
		rv.Endpoints = append(rv.Endpoints, ev)
	}
	return rv
}

func endpointName(url string, addr netip.Addr, host string) string {
	switch {
	case url != "":
		return url
	case addr.IsValid():
		return addr.String()
	}
	return host
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Services lists every service.
func (n *Node) Services() []ServiceView {
	v := n.View()
	out := make([]ServiceView, 0, len(v.Config.Services))
	for j := range v.Config.Services {
		out = append(out, serviceView(v, j))
	}
	return out
}

// Service returns one service.
func (n *Node) Service(name string) (ServiceView, error) {
	v := n.View()
	j := v.Policy.Service(name)
	if j < 0 {
		return ServiceView{}, errorf(ErrNotFound, "unknown service %q", name)
	}
	return serviceView(v, j), nil
}

func serviceView(v *View, j int) ServiceView {
	cs := &v.Config.Services[j]
	ps := &v.Policy.Services[j]
	sv := ServiceView{
		Name: cs.Name, Hostnames: cs.Hostnames, Mode: cs.Mode, Policy: cs.Policy,
		Degraded: v.Degraded[j],
	}
	for p, ri := range ps.Regions {
		r := &v.Policy.Regions[ri]
		eligible := ps.Dials[p] > 0 && r.Override != policy.ForceDown && (r.Up || r.Override == policy.ForceUp)
		sv.Regions = append(sv.Regions, ServiceRegionView{
			Name: r.Name, Dial: ps.Dials[p], Up: r.Up, Override: r.Override.String(), Eligible: eligible,
		})
	}
	if cs.Writes != nil || cs.Failover != nil {
		sv.Writer = cs.Primary()
		if w, ok := v.State.Writers[cs.Name]; ok && contains(cs.Regions, w) {
			sv.Writer = w
		}
	}
	sv.ETag = etagOf(cs, v.State)
	return sv
}

// etagOf is a service's ETag: a digest of its regions' dials and overrides
// in the operator state st, over the config's initial dials. It depends on
// nothing local to a node, so it is the same on every node of a fleet that
// holds the same state, and If-Match holds fleet-wide.
func etagOf(cs *config.Service, st state.Snapshot) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s", cs.Name)
	for _, r := range cs.Regions {
		d, ok := st.Dial(cs.Name, r)
		if !ok {
			d = cs.DialFor(r)
		}
		o := st.Overrides[r]
		if o == "" {
			o = state.OverrideAuto
		}
		fmt.Fprintf(h, "|%s=%d/%s", r, d, o)
	}
	if cs.Writes != nil || cs.Failover != nil { // the writes primary is part of the service's state
		w := cs.Primary()
		if sw, ok := st.Writers[cs.Name]; ok && contains(cs.Regions, sw) {
			w = sw
		}
		fmt.Fprintf(h, "|writer=%s", w)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:8]) + `"`
}

// Actor is who asks for a change: the admin token's name and the reason
// given.
type Actor struct {
	Token  string
	Reason string
}

// SetDials sets several dials of one service atomically. ifMatch, when not
// empty, must equal the service's current ETag.
func (n *Node) SetDials(service string, dials map[string]int, ifMatch string, who Actor) (ServiceView, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.view.Load()
	j := v.Policy.Service(service)
	if j < 0 {
		return ServiceView{}, errorf(ErrNotFound, "unknown service %q", service)
	}
	if ifMatch != "" && ifMatch != serviceView(v, j).ETag {
		return ServiceView{}, errorf(ErrPrecondition, "service %q changed since %s", service, ifMatch)
	}
	if len(dials) == 0 {
		return ServiceView{}, errorf(ErrInvalid, "no dials given")
	}
	cs := &v.Config.Services[j]
	names := make([]string, 0, len(dials))
	for r, d := range dials {
		if !contains(cs.Regions, r) {
			return ServiceView{}, errorf(ErrInvalid, "region %q is not a region of service %q", r, service)
		}
		if d < 0 || d > 100 {
			return ServiceView{}, errorf(ErrInvalid, "dial %d for region %q is outside 0..100", d, r)
		}
		names = append(names, r)
	}
	if err := n.shiftConflictLocked(service, dials); err != nil {
		return ServiceView{}, err
	}
	if err := n.freezeLocked(service); err != nil {
		return ServiceView{}, err
	}
	sort.Strings(names)
	var audit []state.AuditEntry
	for _, r := range names {
		old := n.dial(cs, r)
		audit = append(audit, state.AuditEntry{
			Token: who.Token, Action: "dial", Target: service + "/" + r,
			Old: strconv.Itoa(old), New: strconv.Itoa(dials[r]), Reason: who.Reason,
		})
	}
	if err := n.changeLocked(func(s *state.Snapshot) error {
		// Checked again on the state the store is about to change, which
		// with etcd may be newer than this node's view: If-Match holds
		// across the fleet.
		if ifMatch != "" && ifMatch != etagOf(cs, *s) {
			return errorf(ErrPrecondition, "service %q changed since %s", service, ifMatch)
		}
		if s.Dials == nil {
			s.Dials = map[string]map[string]int{}
		}
		if s.Dials[service] == nil {
			s.Dials[service] = map[string]int{}
		}
		for r, d := range dials {
			s.Dials[service][r] = d
		}
		return nil
	}, audit...); err != nil {
		return ServiceView{}, err
	}
	n.log.Info("dials changed", "service", service, "dials", dials, "token", who.Token, "reason", who.Reason)
	return serviceView(n.view.Load(), j), nil
}

// SetOverride forces a region up or down, or back to auto.
func (n *Node) SetOverride(region, health string, who Actor) (RegionView, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.view.Load()
	i := v.Policy.Region(region)
	if i < 0 {
		return RegionView{}, errorf(ErrNotFound, "unknown region %q", region)
	}
	switch health {
	case "up", "down", "auto":
	default:
		return RegionView{}, errorf(ErrInvalid, "health must be up, down or auto, not %q", health)
	}
	old := v.Policy.Regions[i].Override.String()
	if err := n.changeLocked(func(s *state.Snapshot) error {
		if s.Overrides == nil {
			s.Overrides = map[string]state.Override{}
		}
		if health == "auto" {
			delete(s.Overrides, region)
		} else {
			s.Overrides[region] = state.Override(health)
		}
		return nil
	}, state.AuditEntry{Token: who.Token, Action: "override", Target: "region " + region, Old: old, New: health, Reason: who.Reason}); err != nil {
		return RegionView{}, err
	}
	n.log.Info("region override changed", "region", region, "old", old, "new", health, "token", who.Token, "reason", who.Reason)
	return regionView(n.view.Load(), i), nil
}

// changeLocked makes a change durable in the state store, then rebuilds
// and publishes the snapshot. n.mu must be held.
func (n *Node) changeLocked(fn func(*state.Snapshot) error, audit ...state.AuditEntry) error {
	for i := range audit {
		if audit[i].Node == "" {
			audit[i].Node = n.cfg.Node.Name
		}
	}
	st, err := n.store.Update(fn, audit...)
	if errors.Is(err, ErrUnavailable) {
		return err // "state backend unavailable: …", answered 503
	}
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	n.st = st
	return n.rebuildLocked()
}

// Audit returns up to limit audit entries, newest first.
func (n *Node) Audit(limit int) []state.AuditEntry {
	v := n.View()
	a := v.State.Audit
	out := make([]state.AuditEntry, 0, min(limit, len(a)))
	for i := len(a) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, a[i])
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return x == s
		}
	}
	return false
}
