package proxy

import (
	"net/netip"

	"github.com/meridian-edge/meridian/policy"
)

// Pick is where the proxy would send a request of a service from a client
// now: the region of its first attempt and that region's endpoints. With
// sticky client-ip the endpoint is fixed per client and named; otherwise
// each request goes to the less loaded of two weighted draws among
// Candidates. Retries walk the rest of Candidates, then the regions after.
type Pick struct {
	Region     string   `json:"region"`
	Endpoint   string   `json:"endpoint,omitempty"` // sticky client-ip only
	Choice     string   `json:"choice"`             // how the endpoint is chosen
	Candidates []string `json:"candidates"`         // the region's usable endpoints
	FailOpen   bool     `json:"fail_open,omitempty"`
}

// Explain says what Pick the proxy makes for a request of service name from
// client with the current table; ok is false when service is not a
// proxy-mode service or no region can be tried (fail closed). It allocates
// and touches no request counters: it is for the admin API's explain, not
// for requests.
func (p *Proxy) Explain(name string, client netip.Addr) (pk Pick, ok bool) {
	tab := p.tab.Load()
	if tab == nil {
		return Pick{}, false
	}
	var svc *service
	for _, s := range tab.hosts {
		if s.name == name {
			svc = s
			break
		}
	}
	if svc == nil && tab.fallback != nil && tab.fallback.name == name {
		svc = tab.fallback
	}
	if svc == nil {
		return Pick{}, false
	}
	c := policy.Client{Addr: client}
	if svc.needGeo && tab.geo != nil {
		loc := tab.geo.Lookup(client)
		c.Country, c.Continent, c.Subdivision = loc.Country, loc.Continent, loc.Subdivision
		c.Location = policy.Point{Lat: loc.Lat, Lon: loc.Lon, Valid: loc.HasCoords}
	}
	var d policy.Decision
	policy.Decide(tab.pol, svc.idx, &c, &d)
	if d.NoData || d.N == 0 {
		return Pick{}, false
	}
	all := true // no region has a usable endpoint: every endpoint is tried
	for _, ri := range d.Order[:d.N] {
		if len(tab.regions[ri].usable) > 0 {
			all = false
			break
		}
	}
	for _, ri := range d.Order[:d.N] {
		rg := tab.regions[ri]
		cands := rg.usable
		if all {
			cands = rg.eps
		}
		if len(cands) == 0 {
			continue
		}
		pk = Pick{Region: rg.name, FailOpen: all || d.FailOpen}
		for _, e := range cands {
			pk.Candidates = append(pk.Candidates, e.url.String())
		}
		switch {
		case len(cands) == 1:
			pk.Endpoint, pk.Choice = cands[0].url.String(), "the region's only usable endpoint"
		case svc.sticky == stickyClientIP:
			pk.Endpoint, pk.Choice = rendezvous(cands, clientHash(client)).url.String(), "sticky: client-ip (rendezvous hash)"
		case svc.sticky == stickyCookie:
			pk.Choice = "sticky: cookie; without one, the less loaded of two weighted draws"
		default:
			pk.Choice = "per request, the less loaded of two weighted draws"
		}
		return pk, true
	}
	return Pick{}, false
}
