package dnsserver

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/internal/siphash"
)

// DNS cookies (RFC 7873) with server cookies built as RFC 9018 has them:
// Version 1 | Reserved (3) | Timestamp (4) | SipHash-2-4 of client cookie,
// version, reserved, timestamp and client address under the server secret.
const (
	cookieClientLen = 8
	cookieServerLen = 16 // the RFC 9018 server cookie
	cookieMinServer = 8  // RFC 7873 §4: a server cookie is 8 to 32 bytes
	cookieMaxServer = 32
	cookieVersion   = 1
	// A server cookie older than cookieMaxAge or more than cookieMaxAhead
	// in the future is invalid; one older than cookieRenew is answered
	// with a fresh one (RFC 9018 §4.3).
	cookieMaxAge   = 3600
	cookieMaxAhead = 300
	cookieRenew    = 1800
	// cookieOptLen is the length of the COOKIE option the server sends:
	// option header, client cookie and server cookie.
	cookieOptLen = 4 + cookieClientLen + cookieServerLen
	// rcodeBadCookie is BADCOOKIE (RFC 7873 §8), an extended rcode.
	rcodeBadCookie = dns.RcodeBadCookie
)

// DefaultCookieRotation is how often a node on its own replaces its cookie
// secret; the previous one stays accepted until the next replacement.
// Server cookies live an hour, so the rotation is never shorter.
const DefaultCookieRotation = 24 * time.Hour

// cookieOpt is a query's COOKIE option and what the server answers to it.
type cookieOpt struct {
	present   bool // the query has a COOKIE option
	malformed bool // of a length RFC 7873 §5.2.2 makes FORMERR, or repeated
	slen      uint8
	client    [cookieClientLen]byte
	rserver   [cookieMaxServer]byte // the server cookie received (slen bytes)
	// Set by cookieJar.check:
	answer bool                  // the answer carries a COOKIE option
	valid  bool                  // the received server cookie is one of ours and current
	server [cookieServerLen]byte // the server cookie to answer with
}

// parse reads a COOKIE option's data. A second COOKIE option, and one of
// a length other than 8 or 16 to 40 bytes, is malformed.
func (c *cookieOpt) parse(b []byte) {
	if c.present || len(b) != cookieClientLen && (len(b) < cookieClientLen+cookieMinServer || len(b) > cookieClientLen+cookieMaxServer) {
		c.present, c.malformed = true, true
		return
	}
	c.present = true
	copy(c.client[:], b)
	c.slen = uint8(copy(c.rserver[:], b[cookieClientLen:])) //nolint:gosec // G115: at most 32
}

// appendOption appends the answer's COOKIE option.
func (c *cookieOpt) appendOption(b []byte) []byte {
	b = append(b, 0, byte(dns.EDNS0COOKIE), 0, cookieClientLen+cookieServerLen)
	b = append(b, c.client[:]...)
	return append(b, c.server[:]...)
}

// cookieSecrets are the secrets server cookies are made and checked with.
type cookieSecrets struct {
	cur, prev [siphash.KeySize]byte
	hasPrev   bool
}

// cookieJar makes and checks server cookies. A Server has one for its
// life; tables answer with it while dns.cookies is on.
type cookieJar struct {
	secrets atomic.Pointer[cookieSecrets]
	// shared is set once SetCookieSecrets was called: the secrets come
	// from the fleet and the node stops rotating its own.
	shared    atomic.Bool
	rotatedAt atomic.Int64 // unix seconds of the last local rotation
	now       func() time.Time
}

func newCookieJar(now func() time.Time) *cookieJar {
	j := &cookieJar{now: now}
	s := &cookieSecrets{}
	_, _ = rand.Read(s.cur[:]) // never fails (crypto/rand documents it)
	j.secrets.Store(s)
	j.rotatedAt.Store(now().Unix())
	return j
}

// rotate makes a fresh secret current and keeps the current one as the
// previous, unless the secrets are shared, or the last rotation is more
// recent than every.
func (j *cookieJar) rotate(every time.Duration) bool {
	now := j.now().Unix()
	if j.shared.Load() || now-j.rotatedAt.Load() < int64(every/time.Second) {
		return false
	}
	old := j.secrets.Load()
	s := &cookieSecrets{prev: old.cur, hasPrev: true}
	_, _ = rand.Read(s.cur[:])
	j.secrets.Store(s)
	j.rotatedAt.Store(now)
	return true
}

// errCookieSecret is returned for a secret of the wrong size.
var errCookieSecret = errors.New("a cookie secret is 16 bytes")

// set installs shared secrets; see Server.SetCookieSecrets.
func (j *cookieJar) set(current, previous []byte) error {
	if len(current) != siphash.KeySize || (previous != nil && len(previous) != siphash.KeySize) {
		return errCookieSecret
	}
	s := &cookieSecrets{hasPrev: previous != nil}
	copy(s.cur[:], current)
	copy(s.prev[:], previous)
	j.shared.Store(true)
	j.secrets.Store(s)
	return nil
}

// check decides the answer to a query's COOKIE option from the resolver
// at src: false when the option is malformed (FORMERR, RFC 7873 §5.2.2).
// Otherwise the answer carries the client cookie and a server cookie: the
// one received when it is valid, younger than half an hour and made with
// the current secret and reserved bytes zero, else a new one (§5.2.3-5.2.5,
// RFC 9018 §4.3). With j nil (cookies off) the option is ignored.
func (j *cookieJar) check(c *cookieOpt, src netip.Addr) bool {
	if j == nil || !c.present {
		c.answer = false
		return true
	}
	return j.checkPresent(c, src)
}

// checkPresent is check for a query with a COOKIE option and cookies on.
func (j *cookieJar) checkPresent(c *cookieOpt, src netip.Addr) bool {
	if c.malformed {
		c.answer = false
		return false
	}
	c.answer = true
	now := uint32(j.now().Unix()) //nolint:gosec // G115: RFC 9018 timestamps are serial numbers mod 2^32
	s := j.secrets.Load()
	if c.slen == cookieServerLen && c.rserver[0] == cookieVersion {
		ts := binary.BigEndian.Uint32(c.rserver[4:8])
		age := int32(now - ts) //nolint:gosec // G115: serial number arithmetic (RFC 1982)
		if age <= cookieMaxAge && age >= -cookieMaxAhead {
			mac := binary.BigEndian.Uint64(c.rserver[8:16])
			switch {
			case cookieMAC(&s.cur, &c.client, c.rserver[:8], src) == mac:
				c.valid = true
				if age <= cookieRenew && c.rserver[1]|c.rserver[2]|c.rserver[3] == 0 {
					copy(c.server[:], c.rserver[:cookieServerLen])
					return true
				}
			case s.hasPrev && cookieMAC(&s.prev, &c.client, c.rserver[:8], src) == mac:
				c.valid = true
			}
		}
	}
	c.server = makeServerCookie(&s.cur, &c.client, now, src)
	return true
}

// makeServerCookie builds the RFC 9018 server cookie for a client cookie
// and address at time ts (unix seconds mod 2^32).
func makeServerCookie(key *[siphash.KeySize]byte, client *[cookieClientLen]byte, ts uint32, src netip.Addr) (sc [cookieServerLen]byte) {
	sc[0] = cookieVersion
	binary.BigEndian.PutUint32(sc[4:8], ts)
	binary.BigEndian.PutUint64(sc[8:], cookieMAC(key, client, sc[:8], src))
	return sc
}

// cookieMAC is the hash of a server cookie: SipHash-2-4 over the client
// cookie, the server cookie's first 8 bytes (version, reserved, timestamp)
// and the client address (4 bytes for IPv4, 16 for IPv6). Its 8 output
// bytes are written as SipHash's reference does, little-endian; the
// big-endian uint64 returned reads them in that order.
func cookieMAC(key *[siphash.KeySize]byte, client *[cookieClientLen]byte, head []byte, src netip.Addr) uint64 {
	var buf [cookieClientLen + 8 + 16]byte
	copy(buf[:], client[:])
	copy(buf[cookieClientLen:], head[:8])
	n := cookieClientLen + 8
	if src.Is4() {
		a := src.As4()
		n += copy(buf[n:], a[:])
	} else {
		a := src.As16()
		n += copy(buf[n:], a[:])
	}
	h := siphash.Sum64(key, buf[:n])
	var out [8]byte
	binary.LittleEndian.PutUint64(out[:], h)
	return binary.BigEndian.Uint64(out[:])
}
