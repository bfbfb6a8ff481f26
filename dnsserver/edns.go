package dnsserver

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// ednsOpt is what a query's OPT record asks for.
type ednsOpt struct {
	present bool
	size    uint16 // requestor's UDP payload size
	version uint8
	do      bool
	ecs     ecsOpt
	cookie  cookieOpt
}

// ecsOpt is a query's EDNS Client Subnet option (RFC 7871).
type ecsOpt struct {
	present bool
	family  uint16 // 0 (no address, source 0), 1 IPv4, 2 IPv6
	source  uint8
	alen    uint8    // address octets: (source+7)/8
	raw     [16]byte // the address octets as sent
	addr    netip.Addr
}

// limit returns the largest answer the requestor takes over UDP: its
// EDNS buffer size within [512, 1232], or 512 without EDNS.
func (e *ednsOpt) limit() int {
	if !e.present {
		return minUDPSize
	}
	return min(max(int(e.size), minUDPSize), maxUDPSize)
}

// parseOPT reads the OPT record whose owner starts at msg[off] and whose
// type the caller has checked. For EDNS version 0 it reads the options:
// ECS (validated), COOKIE (kept for cookieJar.check), the rest ignored. ok
// is false for a malformed record. e is zero on entry and filled in.
func parseOPT(e *ednsOpt, msg []byte, off int) (end int, ok bool) {
	if off+11 > len(msg) || msg[off] != 0 {
		return 0, false
	}
	e.present = true
	e.size = be16(msg[off+3:])
	e.version = msg[off+6]
	e.do = msg[off+7]&0x80 != 0
	rdlen := int(be16(msg[off+9:]))
	end = off + 11 + rdlen
	if end > len(msg) {
		return 0, false
	}
	if e.version != 0 {
		return end, true // BADVERS; the options are not looked at
	}
	opts := msg[off+11 : end]
	for len(opts) > 0 {
		if len(opts) < 4 {
			return 0, false
		}
		code, olen := be16(opts), int(be16(opts[2:]))
		if 4+olen > len(opts) {
			return 0, false
		}
		switch code {
		case dns.EDNS0SUBNET:
			if e.ecs.present || !e.ecs.parse(opts[4:4+olen]) {
				return 0, false
			}
		case dns.EDNS0COOKIE:
			e.cookie.parse(opts[4 : 4+olen])
		}
		opts = opts[4+olen:]
	}
	return end, true
}

// parse reads and checks an ECS option's data. RFC 7871 section 6 makes
// FORMERR of an unknown family, a prefix longer than the family's address,
// a SCOPE other than 0 in a query, too few or too many address octets, and
// address bits set beyond SOURCE. Family 0 with SOURCE 0 and no address is
// accepted as "no client information" (dig sends it).
func (c *ecsOpt) parse(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	c.family, c.source = be16(b), b[2]
	if b[3] != 0 {
		return false
	}
	var bits int
	switch c.family {
	case 0:
		if c.source != 0 {
			return false
		}
	case 1:
		bits = 32
	case 2:
		bits = 128
	default:
		return false
	}
	if int(c.source) > bits {
		return false
	}
	c.alen = (c.source + 7) / 8
	if len(b)-4 != int(c.alen) {
		return false
	}
	copy(c.raw[:], b[4:])
	if rem := c.source % 8; rem != 0 && c.raw[c.alen-1]&(0xFF>>rem) != 0 {
		return false
	}
	switch c.family {
	case 1:
		c.addr = netip.AddrFrom4([4]byte(c.raw[:4]))
	case 2:
		c.addr = netip.AddrFrom16(c.raw)
	}
	c.present = true
	return true
}

// client returns the address to decide for: the ECS address when the
// option carries one, else the resolver's.
func (e *ednsOpt) client(src netip.Addr) netip.Addr {
	if e.ecs.present && e.ecs.source > 0 {
		return e.ecs.addr
	}
	return src
}

// optLen is the length of the OPT record appendOPT writes for e with
// ECS.
func (e *ednsOpt) optLen() int {
	n := 11
	if e.ecs.present {
		n += 8 + int(e.ecs.alen)
	}
	if e.cookie.answer {
		n += cookieOptLen
	}
	return n
}

// appendOPT appends the answer's OPT record: buffer size 1232, the
// extended rcode's upper bits, version 0, DO copied, the ECS option echoed
// with scope when the query had one (and withECS), then the COOKIE option
// when the query's cookie is answered.
func appendOPT(b []byte, e *ednsOpt, extRcode uint8, withECS bool, scope uint8) []byte {
	var flags byte
	if e.do {
		flags = 0x80
	}
	b = append(b, 0, 0, byte(dns.TypeOPT), byte(maxUDPSize>>8), byte(maxUDPSize&0xFF), extRcode, 0, flags, 0)
	ecs := withECS && e.ecs.present
	var rdlen uint16
	if ecs {
		rdlen += 8 + uint16(e.ecs.alen)
	}
	if e.cookie.answer {
		rdlen += cookieOptLen
	}
	b = binary.BigEndian.AppendUint16(b, rdlen)
	if ecs {
		c := &e.ecs
		b = append(b, 0, byte(dns.EDNS0SUBNET))
		b = binary.BigEndian.AppendUint16(b, 4+uint16(c.alen))
		b = binary.BigEndian.AppendUint16(b, c.family)
		b = append(b, c.source, scope)
		b = append(b, c.raw[:c.alen]...)
	}
	if e.cookie.answer {
		b = e.cookie.appendOption(b)
	}
	return b
}
