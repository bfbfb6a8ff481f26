package dnsserver

import (
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
)

// Response rate limiting (RRL) of UDP answers, as BIND has it. Every
// response is charged to an account keyed by the client's prefix (/24,
// /56 by default; a loopback address is a prefix of its own), the kind of response and the name it is about (the
// question for answers and NODATA, with its type; the zone for NXDOMAIN;
// the delegation for referrals; none for errors). An account earns
// responses_per_second credits a second up to one second's worth and
// every response costs one; below zero the response is limited, and the
// debt may grow to window seconds' worth, so a client that keeps going
// stays limited until it slows down. A limited response is dropped, or
// every slip-th one is sent truncated and empty (TC=1) so that a real
// resolver retries over TCP, which is never limited; to a client that sent
// a DNS cookie the slip is BADCOOKIE with a fresh server cookie instead,
// which lets it come back over UDP with a cookie that exempts it.
//
// Accounts live in a fixed table of sets of rrlWays entries, each set
// under its own lock and holding its most recently used entries, so the
// table never grows past max_table_size and a response allocates nothing.

// Kinds of response, each limited on its own.
type rrlKind uint8

const (
	kindAnswer rrlKind = iota
	kindNoData
	kindNXDomain
	kindReferral
	kindError
)

var rrlKindNames = [...]string{"answer", "nodata", "nxdomain", "referral", "error"}

// rrlWays is the number of entries in a set.
const rrlWays = 8

// creditUnit is what one response costs. An account earns rate credit
// units per nanosecond, so that whole nanoseconds count.
const creditUnit = int64(time.Second)

// Limits of the log lines about prefixes starting and stopping to be
// limited: at most rrlLogBurst per rrlLogPeriod, the rest counted.
const (
	rrlLogBurst  = 10
	rrlLogPeriod = time.Minute
)

// rrlKeyMax bounds the bytes an account key is hashed from: prefix (17),
// kind and type (3) and a name.
const rrlKeyMax = 17 + 3 + maxNameLen

// rrlEntry is one account.
type rrlEntry struct {
	key    uint64
	credit int64
	last   int64 // limiter clock at the last response; 0: free
	since  int64 // when it started being limited; 0: not limited
	slips  uint32
	kind   rrlKind
	bits   uint8
	addr   [16]byte
}

type rrlSet struct {
	mu   sync.Mutex
	ways [rrlWays]rrlEntry
}

// limiter is one configuration's rate limiter and its table.
type limiter struct {
	cfg       config.RRL // as configured, Exempt masked
	rate      int64
	window    int64 // ns
	maxCredit int64
	minCredit int64
	ways      int
	sets      []rrlSet
	seed      maphash.Seed
	now       func() int64 // monotonic nanoseconds, never 0
	m         *metrics
	log       *slog.Logger
	logs      logLimiter
	lastSweep atomic.Int64
}

// newLimiter returns a limiter for c; now nil is the monotonic clock.
func newLimiter(c *config.RRL, m *metrics, log *slog.Logger, now func() int64) *limiter {
	if now == nil {
		base := time.Now()
		now = func() int64 { return int64(time.Since(base)) + 1 }
	}
	l := &limiter{cfg: *c, m: m, log: log, now: now, seed: maphash.MakeSeed()}
	l.cfg.Exempt = make([]netip.Prefix, len(c.Exempt))
	for i, p := range c.Exempt {
		l.cfg.Exempt[i] = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-unmapBits(p.Addr()), 0)).Masked()
	}
	l.rate = int64(max(c.ResponsesPerSecond, 1))
	l.window = max(int64(c.Window), int64(time.Second))
	l.maxCredit = l.rate * creditUnit
	l.minCredit = -l.window * l.rate
	size := max(c.MaxTableSize, 1)
	l.ways = min(rrlWays, size)
	l.sets = make([]rrlSet, size/l.ways)
	return l
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// same reports whether c configures l.
func (l *limiter) same(c *config.RRL) bool {
	a, b := l.cfg, *c
	if len(a.Exempt) != len(b.Exempt) {
		return false
	}
	for i, p := range b.Exempt {
		if netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-unmapBits(p.Addr()), 0)).Masked() != a.Exempt[i] {
			return false
		}
	}
	return a.ResponsesPerSecond == b.ResponsesPerSecond && a.Window == b.Window && a.Slip == b.Slip &&
		a.IPv4Prefix == b.IPv4Prefix && a.IPv6Prefix == b.IPv6Prefix && a.MaxTableSize == b.MaxTableSize
}

// exempt reports whether src is never limited.
func (l *limiter) exempt(src netip.Addr) bool {
	for _, p := range l.cfg.Exempt {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// apply charges the UDP answer r, in answer to a query with EDNS e, from
// src: it returns r, nil (drop) or, in r's storage, the slip.
func (l *limiter) apply(r []byte, src netip.Addr, e *ednsOpt) []byte {
	if l.exempt(src) || len(r) < headerLen {
		return r
	}
	bits := l.cfg.IPv4Prefix
	if !src.Is4() {
		bits = l.cfg.IPv6Prefix
	}
	if src.IsLoopback() {
		// Loopback sources never crossed a network, so there is no
		// spoofing to aggregate: each local address (a local resolver, a
		// test client) is an account of its own.
		bits = src.BitLen()
	}
	pfx, err := src.Prefix(bits)
	if err != nil {
		return r
	}
	var kb [rrlKeyMax]byte
	a16 := pfx.Addr().As16()
	key := append(kb[:0], a16[:]...)
	key = append(key, clamp8(bits))
	key, kind, qend, ok := appendRRLKey(key, r, e)
	if !ok {
		return r
	}
	h := maphash.Bytes(l.seed, key)
	limited, slip, ev := l.account(h|1, kind, a16, clamp8(bits))
	if ev.started {
		l.logStart(pfx, kind, r)
	}
	if ev.stopped > 0 {
		l.logStop(ev.stoppedPrefix, ev.stoppedKind, time.Duration(ev.stopped))
	}
	switch {
	case !limited:
		return r
	case !slip:
		l.m.rrlDrop.Inc()
		return nil
	}
	l.m.rrlSlip.Inc()
	return slipped(r, qend, e)
}

// rrlEvent is a change worth a log line that charging a response caused.
type rrlEvent struct {
	started bool // the account has just become limited
	// stopped is how long an account that has just stopped being limited
	// (it paid its debt, or it was evicted) was limited; 0: none.
	stopped       int64
	stoppedPrefix netip.Prefix
	stoppedKind   rrlKind
}

// account charges one response to the account key and reports whether it
// is limited, whether it is to be slipped, and what changed.
func (l *limiter) account(key uint64, kind rrlKind, addr [16]byte, bits uint8) (limited, slip bool, ev rrlEvent) {
	set := &l.sets[(key>>32)*uint64(len(l.sets))>>32]
	now := l.now()
	set.mu.Lock()
	var e *rrlEntry
	ways := set.ways[:l.ways]
	for i := range ways {
		if ways[i].key == key && ways[i].last != 0 {
			e = &ways[i]
			break
		}
	}
	if e == nil {
		e = &ways[0]
		for i := range ways[1:] {
			if ways[i+1].last < e.last {
				e = &ways[i+1]
			}
		}
		if e.since != 0 { // evicted while limited
			ev.stopped, ev.stoppedPrefix, ev.stoppedKind = now-e.since, e.prefix(), e.kind
		}
		*e = rrlEntry{key: key, credit: l.maxCredit, last: now, kind: kind, bits: bits, addr: addr}
	}
	elapsed := min(max(now-e.last, 0), l.window)
	e.last = now
	e.credit = max(min(e.credit+elapsed*l.rate, l.maxCredit)-creditUnit, l.minCredit)
	limited = e.credit < 0
	switch {
	case limited && e.since == 0:
		e.since, e.slips, ev.started = now, 0, true
	case !limited && e.since != 0:
		ev.stopped, ev.stoppedPrefix, ev.stoppedKind = now-e.since, e.prefix(), e.kind
		e.since = 0
	}
	if limited && l.cfg.Slip > 0 {
		e.slips++
		if e.slips >= uint32(l.cfg.Slip) { //nolint:gosec // G115: 0..10
			e.slips, slip = 0, true
		}
	}
	set.mu.Unlock()
	return limited, slip, ev
}

// sweep ends the limiting of accounts that have had no response for a
// window (their debt is paid by then), at most once a window.
func (l *limiter) sweep() {
	now := l.now()
	if last := l.lastSweep.Load(); last != 0 && now-last < l.window {
		return
	}
	l.lastSweep.Store(now)
	for i := range l.sets {
		set := &l.sets[i]
		set.mu.Lock()
		for k := range set.ways[:l.ways] {
			e := &set.ways[k]
			if e.since == 0 || now-e.last < l.window {
				continue
			}
			d := now - e.since
			e.since = 0
			kind, pfx := e.kind, e.prefix()
			set.mu.Unlock()
			l.logStop(pfx, kind, time.Duration(d))
			set.mu.Lock()
		}
		set.mu.Unlock()
	}
}

// prefix is the client prefix of e.
func (e *rrlEntry) prefix() netip.Prefix {
	a := netip.AddrFrom16(e.addr)
	if a.Is4In6() && e.bits <= 32 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, int(e.bits))
}

func (l *limiter) logStart(pfx netip.Prefix, kind rrlKind, r []byte) {
	ok, suppressed := l.logs.allow(time.Now())
	if !ok {
		return
	}
	args := []any{"prefix", pfx.String(), "kind", rrlKindNames[kind]}
	if name, _, ok := questionName(r); ok {
		args = append(args, "qname", name)
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Warn("dns rrl: limiting responses", args...)
}

func (l *limiter) logStop(pfx netip.Prefix, kind rrlKind, d time.Duration) {
	ok, suppressed := l.logs.allow(time.Now())
	if !ok {
		return
	}
	args := []any{"prefix", pfx.String(), "kind", rrlKindNames[kind], "limited_for", d.Round(time.Millisecond).String()}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Info("dns rrl: stopped limiting responses", args...)
}

// logLimiter lets rrlLogBurst lines through per rrlLogPeriod and counts
// the rest.
type logLimiter struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one that was.
func (ll *logLimiter) allow(now time.Time) (bool, int) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if now.Sub(ll.start) >= rrlLogPeriod {
		ll.start, ll.n = now, 0
	}
	if ll.n >= rrlLogBurst {
		ll.suppressed++
		return false, 0
	}
	ll.n++
	s := ll.suppressed
	ll.suppressed = 0
	return true, s
}

// appendRRLKey classifies the answer r and appends what its account is
// keyed by besides the prefix: kind, type and name. qend is the end of r's
// question section. ok is false for an answer it cannot read.
func appendRRLKey(key, r []byte, e *ednsOpt) (_ []byte, kind rrlKind, qend int, ok bool) {
	qd, an, ns := be16(r[4:]), be16(r[6:]), be16(r[8:])
	qend = headerLen
	var qtype uint16
	if qd == 1 {
		if qend, ok = skipName(r, headerLen); !ok || qend+4 > len(r) {
			return key, 0, 0, false
		}
		qtype = be16(r[qend:])
		qend += 4
	} else if qd != 0 {
		return key, 0, 0, false
	}
	rc := r[3] & 0x0F
	var nameAt int // 0: no name
	switch {
	case qd == 0 || rc != 0 && rc != rcodeNXDomain || e.present && e.version != 0:
		kind = kindError
	case rc == rcodeNXDomain:
		kind, nameAt = kindNXDomain, authorityOwner(r, qend, an)
	case an > 0 || r[2]&0x02 != 0:
		kind, nameAt = kindAnswer, headerLen
	case r[2]&0x04 != 0 || ns == 0:
		kind, nameAt = kindNoData, headerLen
	default:
		kind, nameAt = kindReferral, authorityOwner(r, qend, an)
	}
	key = append(key, byte(kind))
	if kind == kindAnswer || kind == kindNoData {
		key = append(key, byte(qtype>>8), byte(qtype))
	}
	if nameAt > 0 {
		if key, ok = appendLowerName(key, r, nameAt); !ok {
			return key, 0, 0, false
		}
	}
	return key, kind, qend, true
}

// authorityOwner returns the offset of the owner name of the first
// authority record of r, whose answer section of an records starts at
// off; the question's name when there is none.
func authorityOwner(r []byte, off int, an uint16) int {
	if be16(r[8:]) == 0 {
		return headerLen
	}
	for range an {
		end, ok := skipName(r, off)
		if !ok || end+10 > len(r) {
			return headerLen
		}
		off = end + 10 + int(be16(r[end+8:]))
	}
	if off >= len(r) {
		return headerLen
	}
	return off
}

// appendLowerName appends the name at msg[off:] in lower-case wire form,
// following compression pointers, without growing dst beyond its capacity.
func appendLowerName(dst, msg []byte, off int) ([]byte, bool) {
	for range 128 {
		if off >= len(msg) {
			return dst, false
		}
		l := int(msg[off])
		switch {
		case l == 0:
			if len(dst) == cap(dst) {
				return dst, false
			}
			return append(dst, 0), true
		case l&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return dst, false
			}
			off = int(be16(msg[off:]) & 0x3FFF)
			continue
		case l > 63 || off+1+l > len(msg) || len(dst)+1+l >= cap(dst):
			return dst, false
		}
		dst = append(dst, byte(l))
		for _, c := range msg[off+1 : off+1+l] {
			dst = append(dst, lower[c])
		}
		off += 1 + l
	}
	return dst, false
}

// questionName returns the question's name of r in presentation format.
func questionName(r []byte) (string, int, bool) {
	if len(r) < headerLen || be16(r[4:]) != 1 {
		return "", 0, false
	}
	var buf [maxNameLen + 1]byte
	w, ok := appendLowerName(buf[:0], r, headerLen)
	if !ok {
		return "", 0, false
	}
	var sb []byte
	for off := 0; w[off] != 0; off += 1 + int(w[off]) {
		sb = append(sb, w[off+1:off+1+int(w[off])]...)
		sb = append(sb, '.')
	}
	if len(sb) == 0 {
		return ".", len(w), true
	}
	return string(sb), len(w), true
}

// slipped turns the answer r, whose question ends at qend, into the slip
// sent for it: empty and truncated (TC=1), or BADCOOKIE with a fresh
// server cookie when the query had a cookie, so that the client retries
// over TCP or with the cookie.
func slipped(r []byte, qend int, e *ednsOpt) []byte {
	r = r[:qend]
	clear(r[6:headerLen])
	var ext uint8
	switch {
	case e.present && e.version != 0:
		ext = dns.RcodeBadVers >> 4
	case e.cookie.answer:
		r[3] = r[3]&0xF0 | rcodeBadCookie&0x0F
		ext = rcodeBadCookie >> 4
	default:
		r[2] |= 0x02
	}
	if e.present {
		r[11] = 1
		r = appendOPT(r, e, ext, false, 0)
	}
	return r
}
