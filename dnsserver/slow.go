package dnsserver

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// scanned is what a raw walk over a whole query finds.
type scanned struct {
	qdcount int
	qend    int // offset after the first question
	edns    ednsOpt
	badOPT  bool // an OPT record is malformed, repeated, not at the root or not in the additional section
}

// scanQuery walks every section of q without trusting any count. ok is
// false when the message is cut short or a name is malformed.
func scanQuery(q []byte) (s scanned, ok bool) {
	s.qdcount = int(be16(q[4:]))
	off := headerLen
	for i := range s.qdcount {
		if off, ok = skipName(q, off); !ok || off+4 > len(q) {
			return s, false
		}
		off += 4
		if i == 0 {
			s.qend = off
		}
	}
	rrs := int(be16(q[6:])) + int(be16(q[8:]))
	ar := int(be16(q[10:]))
	for i := range rrs + ar {
		start := off
		if off, ok = skipName(q, off); !ok || off+10 > len(q) {
			return s, false
		}
		rdlen := int(be16(q[off+8:]))
		if off+10+rdlen > len(q) {
			return s, false
		}
		if be16(q[off:]) != dns.TypeOPT {
			off += 10 + rdlen
			continue
		}
		switch {
		case i < rrs:
			s.badOPT = true // RFC 6891 §6.1.1: only in the additional section
		case s.edns.present:
			s.badOPT = true // RFC 6891 §6.1.1: one OPT at most
		default:
			var e ednsOpt
			if _, ok := parseOPT(&e, q, start); ok {
				s.edns = e
			} else {
				s.badOPT = true
				s.edns.present = q[start] == 0 // answer with OPT when it is at least one
			}
		}
		off += 10 + rdlen
	}
	return s, true
}

// answerSlow answers any query with github.com/miekg/dns messages. It is
// the reference for the fast path, which must give the same answers. eo,
// zero on entry, is left holding the query's EDNS options as answered.
func (t *table) answerSlow(q []byte, src netip.Addr, tcp bool, dyn *dynSet, eo *ednsOpt) ([]byte, error) {
	hdr := func(rcode int) *dns.Msg {
		m := new(dns.Msg)
		m.Id = be16(q)
		m.Response = true
		m.Opcode = int(q[2]>>3) & 0x0F
		m.RecursionDesired = q[2]&0x01 != 0
		m.Rcode = rcode
		return m
	}
	if q[2]&0x78 != 0 {
		t.st.none.inc(0, dns.RcodeNotImplemented)
		return hdr(dns.RcodeNotImplemented).Pack()
	}
	s, ok := scanQuery(q)
	if !ok {
		t.st.none.inc(0, dns.RcodeFormatError)
		return hdr(dns.RcodeFormatError).Pack()
	}
	m := hdr(dns.RcodeSuccess)
	m.CheckingDisabled = q[3]&0x10 != 0
	var qtype uint16
	if s.qdcount == 1 {
		name, off, err := dns.UnpackDomainName(q, headerLen)
		if err != nil || off+4 > len(q) {
			t.st.none.inc(0, dns.RcodeFormatError)
			return hdr(dns.RcodeFormatError).Pack()
		}
		qtype = be16(q[off:])
		m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: be16(q[off+2:])}}
	}
	e := &s.edns
	if e.present && e.version == 0 && !s.badOPT && !t.cookies.check(&e.cookie, src) {
		s.badOPT = true
	}
	if s.badOPT {
		e.cookie = cookieOpt{} // a FORMERR answers no cookie
	}
	defer func() { *eo = *e }()
	switch {
	case s.qdcount == 0 && !s.badOPT && e.cookie.answer:
		// RFC 7873 §5.4: a query for a server cookie. NOERROR when the
		// query had no server cookie or a valid one, else BADCOOKIE.
		if e.cookie.slen > 0 && !e.cookie.valid {
			m.Rcode = dns.RcodeBadCookie
		}
		t.st.none.inc(0, clamp8(m.Rcode))
		m.Extra = []dns.RR{optRR(e, false, 0)}
		return m.Pack()
	case s.qdcount != 1 || s.badOPT:
		m.Rcode = dns.RcodeFormatError
	case e.present && e.version != 0:
		m.Rcode = dns.RcodeBadVers
	}
	if m.Rcode != dns.RcodeSuccess {
		t.st.none.inc(qtype, clamp8(m.Rcode))
		if e.present {
			m.Extra = []dns.RR{optRR(e, false, 0)}
		}
		return m.Pack()
	}

	scope, z, err := t.resolveMsg(m, src, dyn, e)
	if err != nil {
		return nil, err
	}
	ctr := t.st.none
	if z != nil {
		ctr = z.ctr
	}
	ctr.inc(qtype, clamp8(m.Rcode))
	glue := len(m.Extra)
	if e.present {
		m.Extra = append(m.Extra, optRR(e, true, scope))
	}
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing answer: %w", err)
	}
	limit := e.limit()
	if tcp {
		limit = maxTCPSize
	}
	if glue > 0 && fastSize(m, glue, e) > limit {
		// Additional records go first, then the answer is truncated.
		m.Extra = m.Extra[glue:]
		if b, err = m.Pack(); err != nil {
			return nil, fmt.Errorf("packing answer: %w", err)
		}
	}
	if len(b) > limit {
		m.Truncated = true
		m.Answer, m.Ns = nil, nil
		return m.Pack()
	}
	return b, nil
}

// fastSize is the size of answer m, with its first glue additional
// records, as the fast path writes it: owners that are the question's name
// or its ancestors as pointers, every other name in full. Both paths
// decide with it whether additional records fit, and so decide alike.
func fastSize(m *dns.Msg, glue int, e *ednsOpt) int {
	qname := dns.CanonicalName(m.Question[0].Name)
	qw, err := wireName(qname)
	if err != nil {
		return maxTCPSize + 1 // unreachable: the question was answered
	}
	n := headerLen + len(qw) + 4 + e.optLen()
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra[:glue]} {
		for _, rr := range sec {
			n += dns.Len(rr)
			if ptr, _, err := ownerFor(rr.Header().Name, qname, len(qw)); err == nil && ptr != 0 {
				ow, _ := wireName(dns.CanonicalName(rr.Header().Name))
				n += 2 - len(ow)
			}
		}
	}
	return n
}

// resolveMsg fills m's rcode, AA bit and sections for its question and
// returns the ECS scope and the zone answered from.
func (t *table) resolveMsg(m *dns.Msg, src netip.Addr, dyn *dynSet, e *ednsOpt) (uint8, *zone, error) {
	qs := m.Question[0]
	qname := qs.Name
	switch qs.Qclass {
	case dns.ClassINET:
	case dns.ClassCHAOS:
		t.chaos(m)
		return 0, nil, nil
	default:
		m.Rcode = dns.RcodeRefused
		return 0, nil, nil
	}
	switch {
	case qs.Qtype == dns.TypeAXFR || qs.Qtype == dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
		return 0, nil, nil
	case qs.Qtype == dns.TypeOPT || (qs.Qtype >= 128 && qs.Qtype < dns.TypeANY):
		m.Rcode = dns.RcodeNotImplemented
		return 0, nil, nil
	}
	w, err := wireName(qname)
	if err != nil {
		return 0, nil, err
	}
	res := t.st.resolve(w, dns.CanonicalName(qname), qs.Qtype, dyn)
	if res.zone == nil {
		m.Rcode = dns.RcodeRefused
		return 0, nil, nil
	}
	m.Authoritative = true
	m.Rcode = int(res.rcode)
	an, ns := res.an, res.ns
	var scope uint8
	if res.steer >= 0 {
		fam, _ := famOf(qs.Qtype)
		p := t.pick(res.steer, e.client(src), e)
		scope = p.scope
		steered := t.svcs[res.steer].records(&p, fam, res.steerOwner)
		an = append(an[:len(an):len(an)], steered...)
		if len(steered) == 0 {
			ns = append(ns[:len(ns):len(ns)], res.zone.negSOA)
		}
	}
	m.Answer = echoOwners(an, qname)
	m.Ns = echoOwners(ns, qname)
	if len(res.ex) > 0 {
		m.Extra = echoOwners(res.ex, qname)
	}
	return scope, res.zone, nil
}

// echoOwners returns copies of rrs whose owners are written as echoCase
// writes them.
func echoOwners(rrs []dns.RR, qname string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = echoCase(rr.Header().Name, qname)
	}
	return out
}

// chaos answers CHAOS TXT id.server and hostname.bind with the node's name
// and refuses everything else in class CHAOS.
func (t *table) chaos(m *dns.Msg) {
	qs := m.Question[0]
	n := strings.ToLower(qs.Name)
	if qs.Qtype != dns.TypeTXT || (n != "id.server." && n != "hostname.bind.") || t.st.chaos == "" {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	m.Answer = []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: qs.Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS},
		Txt: []string{t.st.chaos},
	}}
}

// optRR is the answer's OPT record; see appendOPT.
func optRR(e *ednsOpt, withECS bool, scope uint8) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: maxUDPSize}}
	if e.do {
		o.SetDo()
	}
	if withECS && e.ecs.present {
		c := &e.ecs
		sub := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: c.family, SourceNetmask: c.source, SourceScope: scope}
		switch c.family {
		case 1:
			sub.Address = net.IP(c.raw[:4])
		case 2:
			sub.Address = net.IP(c.raw[:16])
		}
		o.Option = append(o.Option, sub)
	}
	if e.cookie.answer {
		c := &e.cookie
		o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(c.client[:]) + hex.EncodeToString(c.server[:])})
	}
	return o
}
