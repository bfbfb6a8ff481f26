package node

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/policy"
	"github.com/meridian-edge/meridian/proxy"
)

// Explanation is a steering decision with what it comes to on the wire:
// the records a DNS client gets and, for proxy-mode services, where the
// proxy sends the request.
type Explanation struct {
	policy.Explanation
	// DNS is this node's answer to the service's first hostname, asked
	// with the client's address and an ECS option for its subnet.
	DNS *DNSAnswer `json:"dns,omitempty"`
	// Proxy is the region and endpoint of a proxied request's first
	// attempt (proxy mode).
	Proxy *proxy.Pick `json:"proxy,omitempty"`
}

// DNSAnswer is what the node answers a client for one name.
type DNSAnswer struct {
	Name string `json:"name"`
	// ECS is the client subnet sent (SOURCE) and the SCOPE the answer
	// carries: the prefix over which resolvers may cache it.
	ECS     string      `json:"ecs"`
	Scope   *int        `json:"ecs_scope,omitempty"`
	Rcode   string      `json:"rcode"`
	Records []DNSRecord `json:"records"`
}

// DNSRecord is one answer record.
type DNSRecord struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	TTL   uint32 `json:"ttl"`
}

// Explain decides for client of service as the DNS server and the proxy
// do, records every step, and says what the client would get.
func (n *Node) Explain(service string, client netip.Addr) (*Explanation, error) {
	v := n.View()
	j := v.Policy.Service(service)
	if j < 0 {
		return nil, errorf(ErrNotFound, "unknown service %q", service)
	}
	c := policy.Client{Addr: client}
	if v.Geo != nil {
		loc := v.Geo.Lookup(client)
		c.Country, c.Continent, c.Subdivision = loc.Country, loc.Continent, loc.Subdivision
		if loc.HasCoords {
			c.Location = policy.Point{Lat: loc.Lat, Lon: loc.Lon, Valid: true}
		}
	}
	ps := v.Policy
	if v.Config.Services[j].Mode != "proxy" {
		ps = v.DNSPolicy // under fleet.health quorum, the fleet's view of region health
	}
	_, pex := policy.Explain(ps, j, &c)
	ex := &Explanation{Explanation: *pex}
	cfg := v.Config
	if j < len(cfg.Services) && len(cfg.Services[j].Hostnames) > 0 && n.dns != nil {
		a, err := n.askDNS(cfg.Services[j].Hostnames[0], client)
		if err != nil {
			return nil, fmt.Errorf("asking the dns server: %w", err)
		}
		ex.DNS = a
	}
	if pex.Mode == policy.ModeProxy.String() && n.proxy != nil {
		if pk, ok := n.proxy.Explain(service, client); ok {
			ex.Proxy = &pk
		}
	}
	return ex, nil
}

// ecsBits is the client subnet explain sends: what resolvers send by
// default (RFC 7871 section 11.1).
func ecsBits(a netip.Addr) int {
	if a.Is4() {
		return 24
	}
	return 56
}

// askDNS asks this node's DNS server for the A and AAAA records of name
// as client would get them.
func (n *Node) askDNS(name string, client netip.Addr) (*DNSAnswer, error) {
	bits := ecsBits(client)
	pfx := netip.PrefixFrom(client, bits).Masked()
	out := &DNSAnswer{Name: name, ECS: pfx.String(), Records: []DNSRecord{}}
	seen := map[string]bool{}
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qt)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(dns.DefaultMsgSize)
		family := uint16(1)
		if client.Is6() {
			family = 2
		}
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family,
			SourceNetmask: uint8(bits), Address: pfx.Addr().AsSlice()}) //nolint:gosec // G115: 24 or 56
		m.Extra = append(m.Extra, o)
		r, err := n.dns.Ask(m, client)
		if err != nil {
			return nil, err
		}
		if qt == dns.TypeA {
			out.Rcode = dns.RcodeToString[r.Rcode]
		}
		for _, rr := range r.Answer {
			rec := DNSRecord{Type: dns.TypeToString[rr.Header().Rrtype], TTL: rr.Header().Ttl, Value: rrValue(rr)}
			key := rec.Type + " " + rec.Value
			if !seen[key] { // a CNAME comes with both questions
				seen[key] = true
				out.Records = append(out.Records, rec)
			}
		}
		if opt := r.IsEdns0(); opt != nil {
			for _, e := range opt.Option {
				if s, ok := e.(*dns.EDNS0_SUBNET); ok {
					scope := int(s.SourceScope)
					if out.Scope == nil || scope > *out.Scope {
						out.Scope = &scope
					}
				}
			}
		}
	}
	return out, nil
}

// rrValue is the data of rr as a master file shows it, without owner,
// TTL, class and type.
func rrValue(rr dns.RR) string {
	h := rr.Header().String()
	return strings.TrimSpace(strings.TrimPrefix(rr.String(), h))
}
