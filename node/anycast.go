package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/anycast"
	"github.com/meridian-edge/meridian/state"
)

// startAnycast brings the BGP sessions up when the config has a bgp
// section. Called once the listeners are bound; the prefixes follow once
// the node is ready and its self-check passes.
func (n *Node) startAnycast(ctx context.Context) error {
	n.mu.Lock()
	cfg := n.cfg.BGP
	n.mu.Unlock()
	if cfg == nil {
		return nil
	}
	a, err := anycast.New(cfg, anycast.Options{
		Logger:     n.opts.Logger,
		Now:        n.now,
		Registerer: n.reg,
		Ready:      n.fitToAnnounce,
		Targets:    n.selfCheckTargets,
		OnChange:   n.updateReady,
	})
	if err != nil {
		return fmt.Errorf("preparing bgp: %w", err)
	}
	a.SetDrained(n.drained.Load())
	if err := a.Start(ctx); err != nil {
		a.Stop()
		return fmt.Errorf("starting bgp: %w", err)
	}
	n.anycast.Store(a)
	return nil
}

// fitToAnnounce is whether the node could take anycast traffic, drain and
// self-check aside: listeners bound, config and state loaded, the first
// health round done.
func (n *Node) fitToAnnounce() bool {
	n.mu.Lock()
	hc := n.health
	n.mu.Unlock()
	return !n.draining.Load() && hc != nil && hc.Ready() && n.listening() && n.stateLoaded()
}

// stateLoaded reports whether the operator state this node serves with
// has been read. The file backend is read whole in Start, before any
// listener is bound. With etcd, a node that starts while etcd is out of
// reach serves from its cache, but does not announce its prefixes until
// it has been connected to etcd once, so that anycast traffic never
// reaches a node with dials and overrides it has not seen; a later etcd
// outage does not withdraw them (a node never stops answering because
// etcd is gone).
func (n *Node) stateLoaded() bool {
	if n.etcdStore == nil || n.synced.Load() {
		return true
	}
	if up, _, _ := n.etcdStore.Status(); up {
		n.synced.Store(true)
		return true
	}
	return false
}

// anycastReady is false while the node runs BGP and its prefixes are
// withdrawn: anycast traffic does not reach it, and a load balancer that
// reads /health/ready should agree.
func (n *Node) anycastReady() bool {
	a := n.anycast.Load()
	return a == nil || a.Announced()
}

// selfCheckTargets are the node's own DNS and proxy listeners and the
// zones to ask for.
func (n *Node) selfCheckTargets() anycast.Targets {
	var t anycast.Targets
	if v := n.View(); v != nil {
		for _, z := range v.Config.Zones {
			t.Zones = append(t.Zones, z.Name)
		}
	}
	if n.dns != nil {
		// Each DNS listener serves UDP and TCP on one port: ask it once.
		seen := map[string]bool{}
		for _, a := range n.dns.Addrs() {
			if !seen[a.String()] {
				seen[a.String()] = true
				t.DNS = append(t.DNS, a)
			}
		}
	}
	n.mu.Lock()
	for kind, a := range n.bound {
		switch {
		case strings.HasPrefix(kind, "http/"):
			t.HTTP = append(t.HTTP, a)
		case strings.HasPrefix(kind, "https/"):
			t.HTTPS = append(t.HTTPS, a)
		}
	}
	n.mu.Unlock()
	return t
}

// DrainView is the answer of POST /v1/node/drain and /v1/node/undrain.
type DrainView struct {
	Node    string    `json:"node"`
	Drained bool      `json:"drained"`
	Since   time.Time `json:"since,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	Token   string    `json:"token,omitempty"`
	Ready   bool      `json:"ready"`
	// Announced is whether the BGP prefixes are announced; absent without
	// a bgp section.
	Announced *bool `json:"announced,omitempty"`
}

// SetDrained drains this node (readiness 503, BGP prefixes withdrawn at
// once) or undrains it (back as soon as it is ready and its self-check
// passes). The change is persisted and audited before it is answered, and
// survives a restart.
func (n *Node) SetDrained(drain bool, who Actor) (DrainView, error) {
	n.mu.Lock()
	name := n.cfg.Node.Name
	old := n.st.Drained[name]
	_, was := n.st.Drained[name]
	d := &state.Drain{Since: n.now().UTC(), Token: who.Token, Reason: who.Reason}
	if was && drain {
		d.Since = old.Since // a repeated drain keeps when it began
	}
	if !drain {
		d = nil
	}
	action, oldV, newV := "drain", word(was), word(drain)
	if !drain {
		action = "undrain"
	}
	err := n.changeLocked(func(s *state.Snapshot) error {
		s.SetDrained(name, d)
		return nil
	}, state.AuditEntry{Token: who.Token, Action: action, Target: "node " + name, Old: oldV, New: newV, Reason: who.Reason})
	n.mu.Unlock()
	if err != nil {
		return DrainView{}, err
	}
	n.drained.Store(drain)
	if a := n.anycast.Load(); a != nil {
		a.SetDrained(drain) // withdraws before this returns
	}
	n.updateReady()
	n.log.Info("node "+action+"ed", "token", who.Token, "reason", who.Reason)
	return n.drainView(), nil
}

func word(drained bool) string {
	if drained {
		return "drained"
	}
	return "serving"
}

// drainView describes the node's drain state.
func (n *Node) drainView() DrainView {
	n.mu.Lock()
	name := n.cfg.Node.Name
	d, drained := n.st.Drained[name]
	n.mu.Unlock()
	dv := DrainView{Node: name, Drained: drained, Ready: n.Ready()}
	if drained {
		dv.Since, dv.Reason, dv.Token = d.Since, d.Reason, d.Token
	}
	if a := n.anycast.Load(); a != nil {
		on := a.Announced()
		dv.Announced = &on
	}
	return dv
}

// anycastStatus is the bgp part of /v1/status, nil without BGP.
func (n *Node) anycastStatus() *anycast.Status {
	a := n.anycast.Load()
	if a == nil {
		return nil
	}
	st := a.Status()
	return &st
}

// withdrawForShutdown withdraws the prefixes at once, before the drain
// period, so that the network moves traffic away while this node still
// answers what is in flight.
func (n *Node) withdrawForShutdown() {
	if a := n.anycast.Load(); a != nil {
		a.Shutdown()
	}
}

// stopAnycast closes the BGP sessions.
func (n *Node) stopAnycast() {
	if a := n.anycast.Load(); a != nil {
		a.Stop()
	}
}
