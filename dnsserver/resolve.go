package dnsserver

import (
	"strings"

	"github.com/miekg/dns"
)

// maxChain bounds how many CNAMEs inside a zone are followed for one answer.
const maxChain = 8

// resolution is what a question resolves to in the static data, before
// steering and EDNS. Owner names are canonical (lower case).
type resolution struct {
	rcode uint8
	zone  *zone // nil: outside every zone (REFUSED)
	an    []dns.RR
	ns    []dns.RR
	// ex is the additional section: the addresses of in-zone targets of
	// NS, MX and SRV answers, which a client may go without.
	ex []dns.RR
	// steer is the index of the service whose steered records follow an
	// (owned by steerOwner), or -1; an empty steered answer is NODATA.
	steer      int
	steerOwner string
	// wildcard is set when the answer was synthesized for qname from a
	// wildcard, so it cannot be precomputed for one name.
	wildcard bool
}

// famOf maps a query type to the family of steered records it asks for.
func famOf(qtype uint16) (int, bool) {
	switch qtype {
	case dns.TypeA:
		return famA, true
	case dns.TypeAAAA:
		return famAAAA, true
	case dns.TypeCNAME:
		return famCNAME, true
	}
	return 0, false
}

// closest returns the closest existing ancestor of the wire name w in the
// tables (its closest encloser) or nil when w is outside every zone.
func (st *static) closest(w string) *node {
	for p := parent(w); p != ""; p = parent(p) {
		if n := st.names[p]; n != nil {
			return n
		}
	}
	return nil
}

// resolve answers qtype for the name w (wire, lower case) and qname (the
// same name, canonical presentation). dyn holds the ACME TXT records, nil
// while precomputing.
func (st *static) resolve(w, qname string, qtype uint16, dyn *dynSet) resolution {
	res := resolution{steer: -1}
	n := st.names[w]
	owner := qname
	if n == nil {
		encl := st.closest(w)
		switch {
		case encl == nil:
			res.rcode = rcodeRefused
			return res
		case dyn.has(w):
			n = &node{name: qname, wire: w, zone: encl.zone, svc: -1}
		case encl.wild != nil:
			n = encl.wild
			res.wildcard = true
		default:
			res.zone = encl.zone
			res.rcode = rcodeNXDomain
			res.ns = []dns.RR{encl.zone.negSOA}
			return res
		}
	}
	res.zone = n.zone
	if qtype == dns.TypeANY {
		// RFC 8482: a minimal answer instead of every RRset.
		res.an = []dns.RR{&dns.HINFO{
			Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: n.zone.soa.Hdr.Ttl},
			Cpu: "RFC8482",
		}}
		return res
	}
	st.answerAt(n, owner, qtype, dyn, &res, 0)
	return res
}

// answerAt fills res with the answer at node n, written for owner, and
// follows CNAMEs inside the zone.
func (st *static) answerAt(n *node, owner string, qtype uint16, dyn *dynSet, res *resolution, hops int) {
	if _, ok := famOf(qtype); ok && n.svc >= 0 {
		res.steer, res.steerOwner = n.svc, owner
		return
	}
	if c := n.sets[dns.TypeCNAME]; len(c) > 0 && qtype != dns.TypeCNAME {
		res.an = append(res.an, withOwner(c, owner)...)
		st.follow(n.zone, c[0].(*dns.CNAME).Target, qtype, dyn, res, hops+1)
		return
	}
	rrs := n.sets[qtype]
	if qtype == dns.TypeTXT {
		rrs = append(rrs[:len(rrs):len(rrs)], dyn.txt(n.wire)...)
	}
	if len(rrs) == 0 {
		res.ns = append(res.ns, n.zone.negSOA)
		return
	}
	res.an = append(res.an, withOwner(rrs, owner)...)
	st.addGlue(n.zone, rrs, res)
}

// addGlue adds to the additional section the static A and AAAA records of
// the names that rrs (NS, MX or SRV records) point at inside zone z, as
// BIND, gdnsd and PowerDNS do. Service hostnames are left out: their
// addresses depend on the client and come from their own queries.
func (st *static) addGlue(z *zone, rrs []dns.RR, res *resolution) {
	for i, rr := range rrs {
		t, ok := targetOf(rr)
		if !ok {
			return
		}
		if seenTarget(rrs[:i], t) || !dns.IsSubDomain(z.name, t) {
			continue
		}
		w, err := wireName(t)
		if err != nil {
			continue
		}
		n := st.names[w]
		if n == nil || n.zone != z || n.svc >= 0 {
			continue
		}
		res.ex = append(res.ex, n.sets[dns.TypeA]...)
		res.ex = append(res.ex, n.sets[dns.TypeAAAA]...)
	}
}

// targetOf returns the name an NS, MX or SRV record points at.
func targetOf(rr dns.RR) (string, bool) {
	switch rr := rr.(type) {
	case *dns.NS:
		return rr.Ns, true
	case *dns.MX:
		return rr.Mx, true
	case *dns.SRV:
		return rr.Target, true
	}
	return "", false
}

// seenTarget reports whether one of rrs points at t already.
func seenTarget(rrs []dns.RR, t string) bool {
	for _, rr := range rrs {
		if o, _ := targetOf(rr); strings.EqualFold(o, t) {
			return true
		}
	}
	return false
}

// follow continues an answer at the CNAME target t, as long as it stays in
// zone z. A target that does not exist makes the answer NXDOMAIN (RFC 6604).
func (st *static) follow(z *zone, t string, qtype uint16, dyn *dynSet, res *resolution, hops int) {
	if hops > maxChain || !dns.IsSubDomain(z.name, t) {
		return
	}
	w, err := wireName(t)
	if err != nil {
		return
	}
	n := st.names[w]
	if n == nil {
		encl := st.closest(w)
		switch {
		case encl == nil || encl.zone != z:
			return
		case dyn.has(w):
			n = &node{name: t, wire: w, zone: z, svc: -1}
		case encl.wild != nil:
			n = encl.wild
		default:
			res.rcode = rcodeNXDomain
			res.ns = append(res.ns, z.negSOA)
			return
		}
	}
	if n.zone != z {
		return
	}
	st.answerAt(n, t, qtype, dyn, res, hops)
}

// withOwner returns rrs with owner as their name (copies when it differs).
func withOwner(rrs []dns.RR, owner string) []dns.RR {
	if len(rrs) == 0 || rrs[0].Header().Name == owner {
		return rrs
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = owner
	}
	return out
}
