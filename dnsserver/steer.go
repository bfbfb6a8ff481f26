package dnsserver

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/policy"
)

// Families of steered records.
const (
	famA = iota
	famAAAA
	famCNAME
	numFams
)

// Defaults for services built without config.Parse.
const (
	defaultTTL        = 30 * time.Second
	minDegradedTTL    = time.Second
	hashScopeIPv4     = 24 // dial rolls hash the client's /24
	hashScopeIPv6     = 56 // and /56
	ipv4MappedPrefix  = 96
	maxAnswersRegions = policy.MaxRegions
)

// svcTable is a service's answer data for one table generation.
type svcTable struct {
	name    string
	proxy   bool // answers node addresses
	needGeo bool // the policy looks at the client's location
	answers int  // regions per answer
	// regions holds each region's records by config region index; only the
	// service's regions are filled. node holds the node's addresses.
	regions    []regionRRs
	node       regionRRs
	answersCtr []prometheus.Counter // by region index
	failOpen   prometheus.Counter   // nil when not counted
}

// regionRRs are the records a region contributes to an answer: its healthy
// endpoints (all of them when none is healthy), owner names left out.
type regionRRs struct {
	rrs  [numFams][]dns.RR // owner "."; famCNAME holds at most one
	wire [numFams][]byte   // the same records without owner names
	// hasAddr is set when an endpoint has an address: then the region
	// answers A/AAAA (an endpoint of the other family gives nothing) and
	// never a CNAME, which may not share a name with other records.
	hasAddr bool
}

// serviceTTL returns the TTL a service answers with.
func serviceTTL(s *config.Service, degraded bool) uint32 {
	ttl := s.TTL.D()
	if ttl <= 0 {
		ttl = defaultTTL
	}
	if degraded {
		d := s.TTLDegraded.D()
		if d <= 0 {
			d = max(ttl/4, minDegradedTTL)
		}
		ttl = d
	}
	return clamp32(int(ttl / time.Second))
}

// buildServices builds every service's answer data from in.
func buildServices(in *Input, m *metrics, failOpen *prometheus.CounterVec) ([]svcTable, error) {
	cfg := in.Config
	if in.Policy == nil {
		if len(cfg.Services) > 0 {
			return nil, fmt.Errorf("no policy snapshot for %d services", len(cfg.Services))
		}
		return nil, nil
	}
	if len(in.Policy.Services) != len(cfg.Services) || len(in.Policy.Regions) != len(cfg.Regions) {
		return nil, fmt.Errorf("policy snapshot has %d services and %d regions, config %d and %d",
			len(in.Policy.Services), len(in.Policy.Regions), len(cfg.Services), len(cfg.Regions))
	}
	out := make([]svcTable, len(cfg.Services))
	for si := range cfg.Services {
		s := &cfg.Services[si]
		ps := &in.Policy.Services[si]
		if ps.Name != s.Name {
			return nil, fmt.Errorf("policy snapshot service %d is %q, config has %q", si, ps.Name, s.Name)
		}
		ttl := serviceTTL(s, si < len(in.Degraded) && in.Degraded[si])
		sv := &out[si]
		sv.name = s.Name
		sv.proxy = ps.Mode == policy.ModeProxy
		sv.needGeo = ps.Kind == policy.Geo || (ps.Kind == policy.Latency && !sv.proxy)
		sv.answers = min(max(s.Answers, 1), maxAnswersRegions)
		sv.regions = make([]regionRRs, len(cfg.Regions))
		sv.answersCtr = make([]prometheus.Counter, len(cfg.Regions))
		if failOpen != nil {
			sv.failOpen = failOpen.WithLabelValues(s.Name)
		}
		if sv.proxy {
			if err := sv.node.build(cfg.Node.Addresses, nil, ttl); err != nil {
				return nil, fmt.Errorf("service %q: %w", s.Name, err)
			}
			continue
		}
		for _, ri := range ps.Regions {
			r := &cfg.Regions[ri]
			var addrs []netip.Addr
			var hosts []string
			healthy := 0
			for k := range r.Endpoints {
				if in.Health.EndpointUp(ri, k) {
					healthy++
				}
			}
			for k, ep := range r.Endpoints {
				if healthy > 0 && !in.Health.EndpointUp(ri, k) {
					continue
				}
				switch {
				case ep.Address.IsValid():
					addrs = append(addrs, ep.Address)
				case ep.Hostname != "":
					hosts = append(hosts, ep.Hostname)
				}
			}
			if err := sv.regions[ri].build(addrs, hosts, ttl); err != nil {
				return nil, fmt.Errorf("service %q: region %q: %w", s.Name, r.Name, err)
			}
			sv.answersCtr[ri] = m.answers.WithLabelValues(s.Name, r.Name)
		}
	}
	return out, nil
}

// build fills rr with records for addrs and the first of hosts.
func (rr *regionRRs) build(addrs []netip.Addr, hosts []string, ttl uint32) error {
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: ".", Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			b := a.As4()
			rr.rrs[famA] = append(rr.rrs[famA], &dns.A{Hdr: hdr(dns.TypeA), A: b[:]})
		} else {
			b := a.As16()
			rr.rrs[famAAAA] = append(rr.rrs[famAAAA], &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: b[:]})
		}
		rr.hasAddr = true
	}
	if len(hosts) > 0 {
		rr.rrs[famCNAME] = []dns.RR{&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: dns.CanonicalName(hosts[0])}}
	}
	for f := range rr.rrs {
		for _, r := range rr.rrs[f] {
			b, err := rrNoOwner(r)
			if err != nil {
				return err
			}
			rr.wire[f] = append(rr.wire[f], b...)
		}
	}
	return nil
}

// pick is a steering outcome for one query: the regions answered and the
// ECS scope.
type pick struct {
	n     int // regions in reg; 0 = nothing to answer
	reg   [maxAnswersRegions]int
	scope uint8
	proxy bool
}

// pick decides service svc for client and counts the decision. e is the
// query's EDNS (its ECS option sets the scope).
func (t *table) pick(svc int, client netip.Addr, e *ednsOpt) (p pick) {
	sv := &t.svcs[svc]
	if sv.proxy {
		p.proxy, p.n = true, 1
		return p
	}
	c := policy.Client{Addr: client}
	var loc geo.Location
	located := false
	if sv.needGeo && t.geo != nil {
		loc = t.geo.Lookup(client)
		located = true
		c.Country, c.Continent, c.Subdivision = loc.Country, loc.Continent, loc.Subdivision
		c.Location = policy.Point{Lat: loc.Lat, Lon: loc.Lon, Valid: loc.HasCoords}
	}
	var d policy.Decision
	policy.Decide(t.snap, svc, &c, &d)
	if d.FailOpen && sv.failOpen != nil {
		sv.failOpen.Inc()
	}
	if d.NoData || d.N == 0 {
		return p
	}
	p.n = min(sv.answers, d.N)
	for i := range p.n {
		p.reg[i] = d.Order[i]
	}
	if c := sv.answersCtr[d.Order[0]]; c != nil {
		c.Inc()
	}
	if e.ecs.present {
		p.scope = ecsScope(&d, &loc, located, &e.ecs)
	}
	return p
}

// ecsScope returns the SCOPE PREFIX-LENGTH for an answer decided as d: 0
// when it did not depend on the client; the GeoIP network's length when it
// depended on the location (an unlocated client's answer depends on that
// too); at least the /24 or /56 of the dial rolls when it depended on the
// roll; never longer than SOURCE.
func ecsScope(d *policy.Decision, loc *geo.Location, located bool, c *ecsOpt) uint8 {
	if c.source == 0 {
		return 0
	}
	v6 := c.family == 2
	scope := 0
	if located && (d.ByLocation || !loc.HasCoords) {
		if loc.Prefix.IsValid() {
			scope = loc.Prefix.Bits()
			if v6 && loc.Prefix.Addr().Is4() {
				scope += ipv4MappedPrefix
			}
		} else {
			scope = int(c.source)
		}
	}
	if d.ByHash {
		h := hashScopeIPv4
		if v6 {
			h = hashScopeIPv6
			if c.addr.Is4In6() {
				h = ipv4MappedPrefix + hashScopeIPv4
			}
		}
		scope = max(scope, h)
	}
	return clamp8(min(scope, int(c.source)))
}

// set returns the records source for region i of the pick.
func (sv *svcTable) set(p *pick, i int) *regionRRs {
	if p.proxy {
		return &sv.node
	}
	return &sv.regions[p.reg[i]]
}

// cnameOnly reports whether the picked regions answer with a CNAME: no
// picked region has an address.
func (sv *svcTable) cnameOnly(p *pick) bool {
	for i := range p.n {
		if sv.set(p, i).hasAddr {
			return false
		}
	}
	return true
}

// appendRRs appends the steered records of family fam for pick p to b,
// each owned by the name at message offset ptr, and returns how many.
func (sv *svcTable) appendRRs(b []byte, p *pick, fam int, ptr uint16) ([]byte, uint16) {
	var n uint16
	if sv.cnameOnly(p) {
		for i := range p.n {
			if w := sv.set(p, i).wire[famCNAME]; len(w) > 0 {
				return appendRecords(b, w, ptr)
			}
		}
		return b, 0
	}
	if fam == famCNAME {
		return b, 0
	}
	for i := range p.n {
		var c uint16
		b, c = appendRecords(b, sv.set(p, i).wire[fam], ptr)
		n += c
	}
	return b, n
}

// appendRecords appends the owner-less records w, each after a pointer to
// its owner.
func appendRecords(b, w []byte, ptr uint16) ([]byte, uint16) {
	var n uint16
	for len(w) >= 10 {
		l := 10 + int(be16(w[8:]))
		b = appendPtr(b, ptr)
		b = append(b, w[:l]...)
		w = w[l:]
		n++
	}
	return b, n
}

// records returns the steered records for pick p as dns.RRs owned by
// owner, for the general path.
func (sv *svcTable) records(p *pick, fam int, owner string) []dns.RR {
	var src []dns.RR
	if sv.cnameOnly(p) {
		for i := range p.n {
			if r := sv.set(p, i).rrs[famCNAME]; len(r) > 0 {
				src = r
				break
			}
		}
	} else if fam != famCNAME {
		for i := range p.n {
			src = append(src[:len(src):len(src)], sv.set(p, i).rrs[fam]...)
		}
	}
	return withOwner(src, owner)
}
