package dnsserver

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// answerFast answers the common query shape straight from the raw bytes
// and the precomputed tables, without allocating: opcode QUERY, one
// question with an uncompressed name, class IN, no answer or authority
// records, and at most an OPT record (EDNS version 0; ECS and COOKIE
// honoured, other options ignored). It returns ok = false for anything
// else, and for answers it does not precompute (wildcards, ANY, names with
// ACME records), which the general path then gives. e, zero on entry, is
// left holding the query's EDNS options as answered.
func (t *table) answerFast(q []byte, src netip.Addr, tcp bool, dyn *dynSet, e *ednsOpt, out []byte) ([]byte, bool) {
	if len(q) < headerLen+5 || q[2]&0x78 != 0 || be16(q[4:]) != 1 || be16(q[6:]) != 0 || be16(q[8:]) != 0 {
		return out, false
	}
	ar := be16(q[10:])
	if ar > 1 {
		return out, false
	}
	var nb [maxNameLen]byte
	n, off, ok := readQName(q, &nb)
	if !ok || off+4 > len(q) {
		return out, false
	}
	qtype, qclass := be16(q[off:]), be16(q[off+2:])
	if qclass != dns.ClassINET || qtype == dns.TypeOPT || (qtype >= 128 && qtype <= 255) {
		return out, false
	}
	qend := off + 4
	if ar == 1 {
		if qend+3 > len(q) || q[qend] != 0 || be16(q[qend+1:]) != dns.TypeOPT {
			return out, false
		}
		if _, ok = parseOPT(e, q, qend); !ok || e.version != 0 || !t.cookies.check(&e.cookie, src) {
			return out, false
		}
	}
	name := nb[:n]
	if dyn != nil && (qtype == dns.TypeTXT || dyn.names[string(name)] != nil) {
		return out, false
	}
	limit := e.limit()
	if tcp {
		limit = maxTCPSize
	}

	nd := t.st.names[string(name)]
	if nd == nil {
		return t.fastMiss(q[:qend], name, qtype, e, limit, out)
	}
	ent := nd.entry(qtype)
	if ent == nil {
		return out, false
	}
	z := nd.zone
	out = beginAnswer(out, q[:qend], true, ent.rcode)
	body, ex := ent.body, ent.ex
	if ent.steer < 0 && qend+len(body)+e.optLen() > limit {
		// Additional records go first, then the answer is truncated.
		body, ex = body[:len(body)-ent.exLen], 0
		if qend+len(body)+e.optLen() > limit {
			z.ctr.inc(qtype, ent.rcode)
			return truncated(out, e, 0), true
		}
	}
	out = append(out, body...)
	an, ns := ent.an, ent.ns
	var scope uint8
	if ent.steer >= 0 {
		p := t.pick(ent.steer, e.client(src), e)
		var c uint16
		out, c = t.svcs[ent.steer].appendRRs(out, &p, ent.fam, ent.ptr)
		an += c
		if c == 0 {
			out = append(out, ent.tail...)
			ns = 1
		}
		scope = p.scope
	}
	z.ctr.inc(qtype, ent.rcode)
	if len(out)+e.optLen() > limit {
		return truncated(out[:qend], e, scope), true
	}
	return finish(out, an, ns, ex, e, scope), true
}

// fastMiss answers a name that is not in the tables: REFUSED outside the
// zones, NXDOMAIN inside. Wildcards go to the general path.
func (t *table) fastMiss(q, name []byte, qtype uint16, e *ednsOpt, limit int, out []byte) ([]byte, bool) {
	var encl *node
	for off := 0; name[off] != 0; {
		off += 1 + int(name[off])
		if encl = t.st.names[string(name[off:])]; encl != nil {
			break
		}
	}
	if encl == nil {
		t.st.none.inc(qtype, rcodeRefused)
		out = beginAnswer(out, q, false, rcodeRefused)
		return finish(out, 0, 0, 0, e, 0), true
	}
	if encl.wild != nil {
		return out, false
	}
	z := encl.zone
	z.ctr.inc(qtype, rcodeNXDomain)
	out = beginAnswer(out, q, true, rcodeNXDomain)
	if len(q)+2+len(z.negWire)+e.optLen() > limit {
		return truncated(out, e, 0), true
	}
	out = appendPtr(out, pointerTo(headerLen+len(name)-len(z.wire)))
	out = append(out, z.negWire...)
	return finish(out, 0, 1, 0, e, 0), true
}

// beginAnswer starts an answer to the query whose header and question are
// q: ID and question copied, QR set, opcode QUERY, RD and CD copied, RA
// never set.
func beginAnswer(out, q []byte, aa bool, rcode uint8) []byte {
	out = append(out[:0], q...)
	out[2] = 0x80 | q[2]&0x01
	if aa {
		out[2] |= 0x04
	}
	out[3] = q[3]&0x10 | rcode&0x0F
	out[4], out[5] = 0, 1
	clear(out[6:headerLen])
	return out
}

// finish sets the section counts and appends the OPT record.
func finish(out []byte, an, ns, ex uint16, e *ednsOpt, scope uint8) []byte {
	binary.BigEndian.PutUint16(out[6:], an)
	binary.BigEndian.PutUint16(out[8:], ns)
	if e.present {
		ex++
		out = appendOPT(out, e, 0, true, scope)
	}
	binary.BigEndian.PutUint16(out[10:], ex)
	return out
}

// truncated turns out, cut back to the question, into a TC answer.
func truncated(out []byte, e *ednsOpt, scope uint8) []byte {
	out[2] |= 0x02
	return finish(out, 0, 0, 0, e, scope)
}
