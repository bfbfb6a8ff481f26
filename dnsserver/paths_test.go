package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// pathQueries are queries beyond the answer table that both paths must
// answer alike: EDNS shapes, truncation, ECS forms and names of every kind.
var pathQueries = []question{
	{name: "www.example.test.", qtype: dns.TypeA, edns: true, size: 512},
	{name: "www.example.test.", qtype: dns.TypeA, do: true},
	{name: "www.example.test.", qtype: dns.TypeTXT},
	{name: "big.example.test.", qtype: dns.TypeTXT},
	{name: "big.example.test.", qtype: dns.TypeTXT, edns: true},
	{name: "big.example.test.", qtype: dns.TypeTXT, edns: true, size: 100},
	{name: "big.example.test.", qtype: dns.TypeTXT, ecs: "81.2.69.0/24"},
	{name: "BIG.example.test.", qtype: dns.TypeTXT, edns: true, size: 65000},
	{name: "mail.example.test.", qtype: dns.TypeAAAA},
	{name: "example.test.", qtype: dns.TypeA},
	{name: "EXAMPLE.TEST.", qtype: dns.TypeNS, ecs: "175.16.199.0/24"},
	{name: "a.b.c.nope.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
	{name: "nope.Example.Test.", qtype: dns.TypeAAAA, do: true},
	{name: "deep.ent.example.test.", qtype: dns.TypeA},
	{name: "ENT.example.test.", qtype: dns.TypeTXT},
	{name: "x.example.org.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
	{name: "org.", qtype: dns.TypeSOA},
	{name: "test.", qtype: dns.TypeSOA},
	{name: "sub.example.test.", qtype: dns.TypeSOA},
	{name: "SUB.example.test.", qtype: dns.TypeNS},
	{name: "chain.example.test.", qtype: dns.TypeAAAA},
	{name: "Chain.Example.Test.", qtype: dns.TypeMX},
	{name: "chain.example.test.", qtype: dns.TypeCAA},
	{name: "apialias.example.test.", qtype: dns.TypeA},
	{name: "APIALIAS.example.test.", qtype: dns.TypeAAAA},
	{name: "apialias.example.test.", qtype: dns.TypeCNAME},
	{name: "apialias.example.test.", qtype: dns.TypeTXT},
	{name: "api.example.test.", qtype: dns.TypeA, ecs: "41.2.3.0/24"},
	{name: "api.example.test.", qtype: dns.TypeA, ecs: "45.160.3.0/24"},
	{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.128/25"},
	{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.7/32"},
	{name: "api.example.test.", qtype: dns.TypeA, ecs: "2001:db8:1::/48"},
	{name: "api.example.test.", qtype: dns.TypeA, ecs: "::ffff:81.2.69.0/120"},
	{name: "api.example.test.", qtype: dns.TypeAAAA, ecs: "2001:db8:1::/40"},
	{name: "api.example.test.", qtype: dns.TypeHTTPS, ecs: "81.2.69.0/24"},
	{name: "two.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
	{name: "two.example.test.", qtype: dns.TypeAAAA},
	{name: "cdn.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"},
	{name: "web.example.test.", qtype: dns.TypeA},
	{name: "web.example.test.", qtype: dns.TypeTXT},
	{name: "dialed.example.test.", qtype: dns.TypeA, ecs: "216.160.83.0/24"},
	{name: "dialed.example.test.", qtype: dns.TypeA, ecs: "216.160.84.0/24"},
	{name: "dialed.example.test.", qtype: dns.TypeA, ecs: "175.16.199.0/24"},
	{name: "closed.example.test.", qtype: dns.TypeA},
	{name: "_srv._tcp.example.test.", qtype: dns.TypeSRV, do: true},
	{name: "www.example.test.", qtype: 65280},
	{name: "www.example.test.", qtype: dns.TypeA, class: dns.ClassANY},
	{name: "id.server.", qtype: dns.TypeA, class: dns.ClassCHAOS},
	{name: "www.example.test.", qtype: dns.TypeA, cookie: "0102030405060708"},
	{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24", cookie: "0102030405060708"},
	{name: "big.example.test.", qtype: dns.TypeTXT, cookie: "0102030405060708"},
	{name: "big.example.test.", qtype: dns.TypeTXT, size: 512, cookie: "0102030405060708"},
	{name: "many.example.test.", qtype: dns.TypeMX, size: 700, cookie: "0102030405060708"},
	{name: "nope.example.test.", qtype: dns.TypeA, cookie: "0102030405060708"},
	{name: "x.example.org.", qtype: dns.TypeA, cookie: "0102030405060708"},
	{name: "www.example.test.", qtype: dns.TypeA, cookie: "0102030405060708" + "0100000065536f0011223344556677ff"},
	{name: "www.example.test.", qtype: dns.TypeA, cookie: "0102030405060708" + "0011223344556677"},
	{name: "foo.wild.example.test.", qtype: dns.TypeA, cookie: "0102030405060708"},
}

// mustBeFast are queries whose shape the fast path must take.
var mustBeFast = map[string]bool{
	"www.example.test. A":          true,
	"WwW.ExAmPlE.TeSt. A":          true,
	"nope.example.test. A":         true,
	"www.example.org. A":           true,
	"www.example.test. AAAA":       true,
	"api.example.test. A":          true,
	"api.example.test. AAAA":       true,
	"apialias.example.test. A":     true,
	"chain.example.test. A":        true,
	"big.example.test. TXT":        true,
	"example.test. SOA":            true,
	"a.b.c.nope.example.test. A":   true,
	"dialed.example.test. A":       true,
	"web.example.test. A":          true,
	"cdn.example.test. A":          true,
	"x.sub.example.test. A":        true,
	"_srv._tcp.example.test. SRV":  true,
	"closed.example.test. A":       true,
	"API.example.TEST. A":          true,
	"apialias.example.test. AAAA":  true,
	"alias.example.test. MX":       true,
	"dangling.example.test. A":     true,
	"NoPe.Example.TEST. A":         true,
	"example.test. NS":             true,
	"v6.example.test. AAAA":        true,
	"two.example.test. A":          true,
	"sub.example.test. TXT":        true,
	"ent.example.test. A":          true,
	"api.example.test. TXT":        true,
	"api.example.test. CNAME":      true,
	"cdn.example.test. CNAME":      true,
	"ext.example.test. A":          true,
	"alias.example.test. CNAME":    true,
	"api.example.test. MX":         true,
	"example.test. MX":             true,
	"mail.example.test. AAAA":      true,
	"deep.ent.example.test. A":     true,
	"www.example.test. TXT":        true,
	"www.example.test. TYPE65280":  true,
	"apialias.example.test. CNAME": true,
	"two.example.test. AAAA":       true,
	"api.example.test. HTTPS":      true,
	"web.example.test. AAAA":       true,
	"cdn.example.test. AAAA":       true,
}

// TestFastMatchesSlow answers every test query on both paths and compares
// the answers as parsed messages, for UDP and TCP limits and for several
// clients, with DNS cookies on; then it rate-limits both answers alike
// and compares the results.
func TestFastMatchesSlow(t *testing.T) {
	for _, su := range []setup{{}, {down: []string{"eu-west", "us-east/0"}, degraded: []string{"api"}}} {
		f := newFixture(t, su)
		f.pinCookieClock(time.Unix(1700000000, 0))
		tb := f.s.table.Load()
		var qs []question
		for _, tc := range answerCases {
			qs = append(qs, tc.q)
		}
		qs = append(qs, pathQueries...)
		// Cookies this server made for 127.0.0.1: valid there, not for
		// the other clients.
		for _, q := range []question{
			{name: "www.example.test.", qtype: dns.TypeA},
			{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24", do: true},
			{name: "big.example.test.", qtype: dns.TypeTXT, edns: true},
		} {
			var c cookieOpt
			c.parse([]byte{1, 2, 3, 4, 5, 6, 7, 8})
			f.s.jar.check(&c, netip.MustParseAddr("127.0.0.1"))
			q.cookie = hex.EncodeToString(c.client[:]) + hex.EncodeToString(c.server[:])
			qs = append(qs, q)
		}
		fastSeen := map[string]bool{}
		for _, q := range qs {
			m := q.msg()
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			key := q.name + " " + dns.TypeToString[q.qtype]
			if q.qtype == 65280 {
				key = q.name + " TYPE65280"
			}
			for _, src := range []string{"127.0.0.1", "81.2.69.10", "2001:db8:1::7"} {
				for _, tcp := range []bool{false, true} {
					var fe, se ednsOpt
					fast, ok := tb.answerFast(b, netip.MustParseAddr(src), tcp, nil, &fe, make([]byte, 0, 512))
					if !ok {
						continue
					}
					fastSeen[key] = true
					slow, err := tb.answerSlow(b, netip.MustParseAddr(src), tcp, nil, &se)
					if err != nil {
						t.Fatalf("%s: slow path: %v", key, err)
					}
					compareWire(t, key, fast, slow, tcp)
					if fe.cookie != se.cookie {
						t.Errorf("%s: cookies differ: fast %+v, slow %+v", key, fe.cookie, se.cookie)
					}
					if !tcp {
						compareLimited(t, key, netip.MustParseAddr(src), fast, slow, &fe, &se)
					}
				}
			}
		}
		if len(su.down) == 0 {
			for k, want := range mustBeFast {
				if want && !fastSeen[k] {
					t.Errorf("%s: not answered on the fast path", k)
				}
			}
			if fastSeen["foo.wild.example.test. A"] {
				t.Errorf("wildcard answered on the fast path")
			}
		}
	}
}

// compareLimited rate-limits the fast and the slow answer to one query
// alike, on two limiters of one configuration (every limited answer
// slipped, then every second), and compares what each sends.
func compareLimited(t *testing.T, what string, src netip.Addr, fast, slow []byte, fe, se *ednsOpt) {
	t.Helper()
	for _, slip := range []int{1, 2} {
		c := testRRL()
		c.ResponsesPerSecond, c.Slip = 2, slip
		lf, _, _ := testLimiter(c)
		ls, _, _ := testLimiter(c)
		for i := range 6 {
			if fe.cookie.valid {
				break // never limited
			}
			rf := lf.apply(append([]byte(nil), fast...), src, fe)
			rs := ls.apply(append([]byte(nil), slow...), src, se)
			if (rf == nil) != (rs == nil) {
				t.Fatalf("%s: rate-limited answer %d: fast sent %v, slow sent %v", what, i, rf != nil, rs != nil)
			}
			if rf != nil {
				compareWire(t, what+" (rate-limited)", rf, rs, false)
			}
		}
	}
}

// compareWire checks that two answers parse to the same message and that
// the fast one fits the transport.
func compareWire(t *testing.T, what string, fast, slow []byte, tcp bool) {
	t.Helper()
	var fm, sm dns.Msg
	if err := fm.Unpack(fast); err != nil {
		t.Fatalf("%s: fast answer does not parse: %v", what, err)
	}
	if err := sm.Unpack(slow); err != nil {
		t.Fatalf("%s: slow answer does not parse: %v", what, err)
	}
	if fm.String() != sm.String() {
		t.Errorf("%s (tcp %v): paths differ\nfast:\n%s\nslow:\n%s", what, tcp, fm.String(), sm.String())
	}
	if !tcp && len(fast) > maxUDPSize {
		t.Errorf("%s: fast UDP answer of %d bytes", what, len(fast))
	}
}

// TestCookieQueriesTakeFastPath: a COOKIE option keeps a query on the
// fast path; a malformed one goes to the general path, which gives
// FORMERR.
func TestCookieQueriesTakeFastPath(t *testing.T) {
	f := newFixture(t, setup{})
	tb := f.s.table.Load()
	src := netip.MustParseAddr("192.0.2.1")
	for _, c := range []string{"0102030405060708", "0102030405060708" + "0100000065536f0011223344556677ff"} {
		for _, q := range []question{
			{name: "www.example.test.", qtype: dns.TypeA, cookie: c},
			{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24", cookie: c},
			{name: "nope.example.test.", qtype: dns.TypeA, cookie: c},
		} {
			var e ednsOpt
			if _, ok := tb.answerFast(packMsg(t, q.msg()), src, false, nil, &e, nil); !ok || !e.cookie.answer {
				t.Errorf("%s with cookie %s: fast path %v, cookie answered %v", q.name, c, ok, e.cookie.answer)
			}
		}
	}
	bad := rawQuery(t, func(m *dns.Msg) {
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: dns.EDNS0COOKIE, Data: []byte{1, 2, 3}}}
	})
	var e ednsOpt
	if _, ok := tb.answerFast(bad, src, false, nil, &e, nil); ok {
		t.Errorf("malformed cookie answered on the fast path")
	}
}
