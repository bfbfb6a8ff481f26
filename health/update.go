package health

import (
	"github.com/meridian-edge/meridian/config"
)

// Update replaces the checked regions after a config reload. An endpoint
// whose region name, URL, address, hostname and health settings are all
// unchanged keeps its state, RTT, ejection and probe schedule, wherever it
// moved in the list; removed endpoints stop being probed; new ones start
// (down until their first result).
//
// Snapshots published from now on are indexed as regions. An endpoint that
// cannot be checked (the config's validation rejects such files) is kept
// at its index, down, its LastResult naming the problem, and the problem
// is logged. OnChange is called afterwards.
func (c *Checker) Update(regions []config.Region) {
	specs, err := buildSpecs(regions)
	if err != nil {
		c.log.Error("endpoints that cannot be checked stay down", "err", err)
	}
	c.mu.Lock()
	kept, added, removed := c.reconcileLocked(specs)
	c.mu.Unlock()
	c.log.Info("health targets updated", "kept", kept, "added", added, "removed", removed)
	c.changed()
}

// reconcileLocked makes specs the checked regions, reusing endpoints with
// the same key. Checker.mu held.
func (c *Checker) reconcileLocked(specs []regionSpec) (kept, added, removed int) {
	old := map[string][]*endpoint{}
	oldRegions := map[string]*region{}
	for _, r := range c.regions {
		oldRegions[r.name] = r
		for _, ep := range r.endpoints {
			old[ep.t.key] = append(old[ep.t.key], ep)
		}
	}

	regions := make([]*region, len(specs))
	tab := make([][]*endpoint, len(specs))
	labels := map[[2]string]bool{}
	serverNames := map[string]bool{}
	var fresh []*endpoint
	for i, s := range specs {
		r := &region{name: s.name, minHealthy: s.minHealthy, logged: -1}
		if o := oldRegions[s.name]; o != nil {
			r.logged, r.state.Up = o.logged, o.state.Up
		}
		for _, t := range s.targets {
			var ep *endpoint
			if l := old[t.key]; len(l) > 0 {
				ep, old[t.key] = l[0], l[1:]
				kept++
			} else {
				ep = c.newEndpointLocked(t)
				fresh = append(fresh, ep)
				added++
			}
			ep.region = r
			r.endpoints = append(r.endpoints, ep)
			labels[[2]string{t.region, t.name}] = true
			if t.kind == kindHTTP {
				serverNames[t.serverName] = true
			}
		}
		regions[i] = r
		tab[i] = r.endpoints
	}

	for _, l := range old {
		for _, ep := range l {
			removed++
			ep.removed = true
			if ep.cancel != nil {
				ep.cancel()
			}
			if !ep.v.known {
				c.pending--
			}
			if c.metrics != nil && !labels[[2]string{ep.t.region, ep.t.name}] {
				c.metrics.forget(ep)
			}
		}
	}

	c.regions = regions
	for _, r := range regions {
		r.build()
	}
	c.publishLocked()
	c.table.Store(&tab)
	for _, r := range regions {
		c.logRegion(r)
	}
	for _, ep := range fresh {
		c.startLocked(ep)
	}
	c.clients.prune(serverNames)
	c.checkReadyLocked()
	return kept, added, removed
}

// newEndpointLocked creates the endpoint and prober for t. Checker.mu held.
func (c *Checker) newEndpointLocked(t target) *endpoint {
	var p prober
	switch t.kind {
	case kindHTTP:
		p = &httpProber{
			client:  c.clients.get(t.serverName),
			url:     t.url,
			host:    t.host,
			header:  t.header,
			expect:  t.expect,
			timeout: t.timeout,
		}
	case kindTCP:
		p = &tcpProber{dialer: c.dialer, addr: t.addr, timeout: t.timeout}
	}
	ep := newEndpoint(t, p)
	if p != nil {
		c.pending++
	}
	if c.metrics != nil {
		c.metrics.bind(ep)
	}
	return ep
}
