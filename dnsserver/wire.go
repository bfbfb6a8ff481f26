package dnsserver

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/miekg/dns"
)

// Response codes as the fast path writes them into the header.
const (
	rcodeNXDomain uint8 = dns.RcodeNameError
	rcodeRefused  uint8 = dns.RcodeRefused
	rcodeServFail uint8 = dns.RcodeServerFailure
)

// Message layout constants.
const (
	headerLen  = 12
	maxNameLen = 255
	maxUDPSize = 1232 // largest UDP answer, EDNS buffer size advertised
	minUDPSize = 512  // UDP limit without EDNS
	maxTCPSize = 65535
	ptrQName   = 0xC000 | headerLen
)

// lower maps ASCII upper-case letters to lower case and leaves every other
// byte alone. Label length bytes (at most 63) are never letters, so a whole
// wire-format name can be mapped byte by byte.
var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return t
}()

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// pointerTo returns the compression pointer to message offset off, which
// callers keep below 0x4000.
func pointerTo(off int) uint16 { return 0xC000 | uint16(off&0x3FFF) } //nolint:gosec // G115: masked to 14 bits

// clamp8, clamp16 and clamp32 bound v to their types' ranges.
func clamp8(v int) uint8   { return uint8(min(max(v, 0), math.MaxUint8)) }          //nolint:gosec // G115: clamped
func clamp16(v int) uint16 { return uint16(min(max(v, 0), math.MaxUint16)) }        //nolint:gosec // G115: clamped
func clamp32(v int) uint32 { return uint32(min(max(int64(v), 0), math.MaxUint32)) } //nolint:gosec // G115: clamped

// wireName returns the lower-case wire form of the domain name s
// (presentation format, with or without the final dot), the key of the
// name tables.
func wireName(s string) (string, error) {
	var buf [maxNameLen + 1]byte
	n, err := dns.PackDomainName(dns.Fqdn(s), buf[:], 0, nil, false)
	if err != nil {
		return "", fmt.Errorf("name %q: %w", s, err)
	}
	if n > maxNameLen {
		return "", fmt.Errorf("name %q: longer than %d octets", s, maxNameLen)
	}
	for i := range n {
		buf[i] = lower[buf[i]]
	}
	return string(buf[:n]), nil
}

// parent returns the wire name one label up from w ("" for the root).
func parent(w string) string {
	if len(w) <= 1 {
		return ""
	}
	return w[1+int(w[0]):]
}

// readQName copies the uncompressed name at msg[headerLen:] into buf in
// lower case. It returns the name's length and the offset after it; ok is
// false for a compressed, truncated or over-long name.
func readQName(msg []byte, buf *[maxNameLen]byte) (n, end int, ok bool) {
	off := headerLen
	for {
		if off >= len(msg) {
			return 0, 0, false
		}
		l := int(msg[off])
		if l == 0 {
			if n >= maxNameLen {
				return 0, 0, false
			}
			buf[n] = 0
			return n + 1, off + 1, true
		}
		if l > 63 || off+1+l > len(msg) || n+1+l >= maxNameLen {
			return 0, 0, false
		}
		buf[n] = byte(l)
		for i, c := range msg[off+1 : off+1+l] {
			buf[n+1+i] = lower[c]
		}
		n += 1 + l
		off += 1 + l
	}
}

// skipName returns the offset after the (possibly compressed) name at
// msg[off:], without following pointers.
func skipName(msg []byte, off int) (int, bool) {
	for steps := 0; steps < 128; steps++ {
		if off >= len(msg) {
			return 0, false
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return 0, false
			}
			return off + 2, true
		case l > 63:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// rrNoOwner returns rr in wire format without its owner name: type, class,
// TTL, RDLENGTH and RDATA, with names in RDATA uncompressed.
func rrNoOwner(rr dns.RR) ([]byte, error) {
	cp := dns.Copy(rr)
	cp.Header().Name = "."
	buf := make([]byte, dns.Len(cp)+64)
	for {
		n, err := dns.PackRR(cp, buf, 0, nil, false)
		if err == dns.ErrBuf && len(buf) < maxTCPSize {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("packing %s: %w", rr.Header().Name, err)
		}
		return buf[1:n], nil
	}
}

// ownerFor returns how the owner name of a record is written in an answer
// to a question for qname (canonical): as a pointer into the question when
// it is qname or one of its ancestors (so it shows in the question's case),
// else in full.
func ownerFor(owner, qname string, qwire int) (ptr uint16, full string, err error) {
	owner = dns.CanonicalName(owner)
	if owner == qname || (len(owner) < len(qname) && dns.IsSubDomain(owner, qname)) {
		ow, err := wireName(owner)
		if err != nil {
			return 0, "", err
		}
		return pointerTo(headerLen + qwire - len(ow)), "", nil
	}
	ow, err := wireName(owner)
	return 0, ow, err
}

// section is precomputed answer text: records in wire format, ready to be
// appended after a question, and their count.
type section struct {
	b []byte
	n uint16
}

// add appends rr to s as it appears in an answer to a question for qname
// whose wire form is qwire octets long.
func (s *section) add(rr dns.RR, qname string, qwire int) error {
	ptr, full, err := ownerFor(rr.Header().Name, qname, qwire)
	if err != nil {
		return err
	}
	body, err := rrNoOwner(rr)
	if err != nil {
		return err
	}
	if full != "" {
		s.b = append(s.b, full...)
	} else {
		s.b = binary.BigEndian.AppendUint16(s.b, ptr)
	}
	s.b = append(s.b, body...)
	s.n++
	return nil
}

// echoCase returns owner written as the question writes it when owner is
// qname or one of its ancestors (compared without regard to case), else
// owner in lower case. The general path writes names this way so that its
// answers read exactly like the fast path's pointers into the question.
func echoCase(owner, qname string) string {
	owner = dns.CanonicalName(owner)
	q := dns.Fqdn(qname)
	if !dns.IsSubDomain(owner, q) {
		return owner
	}
	n := dns.CountLabel(owner)
	if n == 0 {
		return "."
	}
	idx := dns.Split(q)
	return q[idx[len(idx)-n]:]
}
