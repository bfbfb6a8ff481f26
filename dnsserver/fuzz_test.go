package dnsserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds raw messages to the query path, with DNS cookies and
// response rate limiting on: nothing may panic, every answer parses and
// carries the query's ID, UDP answers fit 1232 bytes, and where the fast
// path answers, the general path answers alike, gives the same cookie and
// is rate-limited alike. The paths are called without the adapter's
// recover so that a panic fails the fuzz run instead of turning into
// SERVFAIL.
func FuzzServeDNS(f *testing.F) {
	fx := newFixture(f, setup{})
	fx.pinCookieClock(time.Unix(1700000000, 0))
	rrl := testRRL()
	rrl.ResponsesPerSecond, rrl.Slip = 1, 1
	fx.setRRL(f, rrl)
	for _, q := range []question{
		{name: "www.example.test.", qtype: dns.TypeA},
		{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
		{name: "apialias.example.test.", qtype: dns.TypeAAAA, ecs: "2001:db8:1::/48", do: true},
		{name: "big.example.test.", qtype: dns.TypeTXT, edns: true},
		{name: "many.example.test.", qtype: dns.TypeMX},
		{name: "many.example.test.", qtype: dns.TypeMX, edns: true, size: 700},
		{name: "example.test.", qtype: dns.TypeNS},
		{name: "x.wild.example.test.", qtype: dns.TypeANY},
		{name: "id.server.", qtype: dns.TypeTXT, class: dns.ClassCHAOS},
		{name: "www.example.test.", qtype: dns.TypeA, cookie: "0102030405060708"},
		{name: "nope.example.test.", qtype: dns.TypeA, cookie: "0102030405060708" + "0100000065536f0011223344556677ff"},
		{name: "big.example.test.", qtype: dns.TypeTXT, ecs: "81.2.69.0/24", cookie: "0102030405060708"},
	} {
		b := packMsg(f, q.msg())
		f.Add(b, false)
		f.Add(b, true)
	}
	tb := fx.s.table.Load()
	src := netip.MustParseAddr("175.16.199.7")
	f.Fuzz(func(t *testing.T, q []byte, tcp bool) {
		if r := fx.s.answer(q, src, tcp, nil); r != nil {
			var m dns.Msg
			if err := m.Unpack(r); err != nil {
				t.Fatalf("answer %x does not parse: %v", r, err)
			}
			if m.Id != be16(q) || !m.Response {
				t.Fatalf("answer id %d response %v, query id %d", m.Id, m.Response, be16(q))
			}
			if !tcp && len(r) > maxUDPSize {
				t.Fatalf("UDP answer of %d bytes", len(r))
			}
		}
		if len(q) < headerLen || q[2]&0x80 != 0 {
			return
		}
		if r := fx.s.answer(q, src, false, nil); r != nil {
			// Rate-limited over UDP: the answer, or a slip.
			var m dns.Msg
			if err := m.Unpack(r); err != nil {
				t.Fatalf("answer %x does not parse: %v", r, err)
			}
			if m.Id != be16(q) || (m.Truncated || m.Rcode == dns.RcodeBadCookie) && len(m.Answer)+len(m.Ns) != 0 {
				t.Fatalf("slip with records or another ID: %v", &m)
			}
		}
		var fe, se ednsOpt
		fast, ok := tb.answerFast(q, src, tcp, nil, &fe, nil)
		slow, err := tb.answerSlow(q, src, tcp, nil, &se)
		if err != nil {
			// Only names the general path cannot pack may fail, and then
			// the fast path must not have answered either.
			if ok {
				t.Fatalf("general path failed (%v) where the fast path answered", err)
			}
			return
		}
		if ok {
			compareWire(t, "fuzzed query", fast, slow, tcp)
			if fe.cookie != se.cookie {
				t.Fatalf("cookies differ: fast %+v, slow %+v", fe.cookie, se.cookie)
			}
			if !tcp {
				compareLimited(t, "fuzzed query", src, fast, slow, &fe, &se)
			}
		}
	})
}
