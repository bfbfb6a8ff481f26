package dnsserver

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
)

// testRRL is the configuration of the black-box check: 5 responses a
// second over 5 seconds, every second limited answer slipped.
func testRRL() *config.RRL {
	return &config.RRL{ResponsesPerSecond: 5, Window: config.Duration(5 * time.Second), Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, MaxTableSize: 1000}
}

// fakeClock is a limiter clock the test moves.
type fakeClock struct{ ns int64 }

func (c *fakeClock) now() int64              { return c.ns }
func (c *fakeClock) advance(d time.Duration) { c.ns += int64(d) }

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLimiter is a limiter for c on a fake clock, logging into a buffer.
func testLimiter(c *config.RRL) (*limiter, *fakeClock, *lockedBuffer) {
	clk := &fakeClock{ns: 1}
	buf := &lockedBuffer{}
	m, _ := newMetrics(nil)
	return newLimiter(c, m, slog.New(slog.NewTextHandler(buf, nil)), clk.now), clk, buf
}

// outcome names what apply did to an answer: P passed, D dropped, S
// slipped.
func outcome(r, orig []byte) byte {
	switch {
	case r == nil:
		return 'D'
	case len(r) != len(orig) || !bytes.Equal(r, orig):
		return 'S'
	}
	return 'P'
}

func TestRRLAccounting(t *testing.T) {
	f := newFixture(t, setup{})
	q := packMsg(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
	l, clk, _ := testLimiter(testRRL())
	src := netip.MustParseAddr("192.0.2.1")
	steps := []struct {
		name  string
		after time.Duration
		n     int
		want  string
	}{
		{"a second's worth passes, then every second limited answer slips", 0, 10, "PPPPPDSDSD"},
		{"a second later the debt is not paid", time.Second, 1, "S"},
		{"two seconds later it is", 2 * time.Second, 4, "PPPP"},
		{"down to zero again: limited anew, the slip count restarts", 0, 2, "PD"},
		{"a long flood", 0, 500, "SD"},
		{"owes a whole window: limited a window later", 5 * time.Second, 1, "S"},
		{"paid after more than a window", 1200 * time.Millisecond, 2, "PP"},
		{"credit never exceeds a second's worth", time.Hour, 7, "PPPPPDS"},
	}
	for _, st := range steps {
		clk.advance(st.after)
		var got []byte
		for range st.n {
			r := f.answerBytes(q, src.String())
			orig := append([]byte(nil), r...)
			got = append(got, outcome(l.apply(r, src, &ednsOpt{}), orig))
		}
		if st.n > len(st.want) {
			got = got[len(got)-len(st.want):]
		}
		if string(got) != st.want {
			t.Errorf("%s: got %s, want %s", st.name, got, st.want)
		}
	}
}

func TestRRLSlipZeroDropsAll(t *testing.T) {
	f := newFixture(t, setup{})
	c := testRRL()
	c.Slip = 0
	l, _, _ := testLimiter(c)
	q := packMsg(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
	var got []byte
	for range 9 {
		r := f.answerBytes(q, "192.0.2.1")
		orig := append([]byte(nil), r...)
		got = append(got, outcome(l.apply(r, netip.MustParseAddr("192.0.2.1"), &ednsOpt{}), orig))
	}
	if string(got) != "PPPPPDDDD" {
		t.Errorf("got %s, want PPPPPDDDD", got)
	}
}

// TestRRLAccounts checks what shares an account: the client prefix, the
// kind of response, and the name (the question for answers, the zone for
// NXDOMAIN, none for errors).
func TestRRLAccounts(t *testing.T) {
	f := newFixture(t, setup{})
	type ask struct {
		name  string
		qtype uint16
		src   string
	}
	cases := []struct {
		name   string
		first  []ask // exhaust the account of the first with 5 answers, then ask these
		second ask
		shared bool
	}{
		{"same question", []ask{{"www.example.test.", dns.TypeA, "192.0.2.1"}}, ask{"WWW.example.test.", dns.TypeA, "192.0.2.1"}, true},
		{"same /24", []ask{{"www.example.test.", dns.TypeA, "192.0.2.1"}}, ask{"www.example.test.", dns.TypeA, "192.0.2.200"}, true},
		{"other /24", []ask{{"www.example.test.", dns.TypeA, "192.0.2.1"}}, ask{"www.example.test.", dns.TypeA, "192.0.3.1"}, false},
		{"loopback addresses apart", []ask{{"www.example.test.", dns.TypeA, "127.0.0.1"}}, ask{"www.example.test.", dns.TypeA, "127.0.0.2"}, false},
		{"other type", []ask{{"www.example.test.", dns.TypeA, "192.0.2.1"}}, ask{"www.example.test.", dns.TypeAAAA, "192.0.2.1"}, false},
		{"other name", []ask{{"www.example.test.", dns.TypeA, "192.0.2.1"}}, ask{"api.example.test.", dns.TypeA, "192.0.2.1"}, false},
		{"NXDOMAIN for random names shares the zone", []ask{{"a1.example.test.", dns.TypeA, "192.0.2.1"}, {"b2.example.test.", dns.TypeA, "192.0.2.1"}, {"c3.x.example.test.", dns.TypeAAAA, "192.0.2.1"}}, ask{"d4.example.test.", dns.TypeTXT, "192.0.2.1"}, true},
		{"NXDOMAIN of another zone", []ask{{"a1.example.test.", dns.TypeA, "192.0.2.1"}}, ask{"a1.sub.example.test.", dns.TypeA, "192.0.2.1"}, false},
		{"NXDOMAIN and an answer", []ask{{"a1.example.test.", dns.TypeA, "192.0.2.1"}}, ask{"www.example.test.", dns.TypeA, "192.0.2.1"}, false},
		{"NODATA by name and type", []ask{{"www.example.test.", dns.TypeMX, "192.0.2.1"}}, ask{"www.example.test.", dns.TypeMX, "192.0.2.1"}, true},
		{"NODATA and an answer of one name", []ask{{"www.example.test.", dns.TypeMX, "192.0.2.1"}}, ask{"www.example.test.", dns.TypeA, "192.0.2.1"}, false},
		{"errors share one account", []ask{{"x.example.org.", dns.TypeA, "192.0.2.1"}, {"y.example.net.", dns.TypeA, "192.0.2.1"}}, ask{"z.example.com.", dns.TypeMX, "192.0.2.1"}, true},
		{"same /56", []ask{{"www.example.test.", dns.TypeA, "2001:db8:0:1::1"}}, ask{"www.example.test.", dns.TypeA, "2001:db8:0:ff:1::1"}, true},
		{"other /56", []ask{{"www.example.test.", dns.TypeA, "2001:db8:0:1::1"}}, ask{"www.example.test.", dns.TypeA, "2001:db8:0:100::1"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, _, _ := testLimiter(testRRL())
			send := func(a ask) byte {
				r := f.answerBytes(packMsg(t, question{name: a.name, qtype: a.qtype}.msg()), a.src)
				orig := append([]byte(nil), r...)
				return outcome(l.apply(r, netip.MustParseAddr(a.src), &ednsOpt{}), orig)
			}
			for i := range 5 {
				if got := send(tc.first[i%len(tc.first)]); got != 'P' {
					t.Fatalf("answer %d of the first account: %c", i+1, got)
				}
			}
			got := send(tc.second)
			if shared := got != 'P'; shared != tc.shared {
				t.Errorf("second question: %c, want shared account %v", got, tc.shared)
			}
		})
	}
}

func TestRRLSlipForm(t *testing.T) {
	f := newFixture(t, setup{})
	f.pinCookieClock(time.Unix(1700000000, 0))
	cases := []struct {
		name   string
		q      question
		rcode  int
		tc     bool
		opt    bool
		cookie bool
	}{
		{"no EDNS", question{name: "www.example.test.", qtype: dns.TypeA}, dns.RcodeSuccess, true, false, false},
		{"EDNS with ECS", question{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24", do: true}, dns.RcodeSuccess, true, true, false},
		{"NXDOMAIN", question{name: "nope.example.test.", qtype: dns.TypeA, edns: true}, dns.RcodeNameError, true, true, false},
		{"REFUSED", question{name: "x.example.org.", qtype: dns.TypeA}, dns.RcodeRefused, true, false, false},
		{"client cookie: BADCOOKIE with a server cookie", question{name: "www.example.test.", qtype: dns.TypeA, cookie: "0102030405060708"}, dns.RcodeBadCookie, false, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testRRL()
			c.Slip = 1
			l, _, _ := testLimiter(c)
			q := packMsg(t, tc.q.msg())
			src := netip.MustParseAddr("192.0.2.1")
			var r []byte
			for range 6 {
				var e ednsOpt
				r = f.s.table.Load().answerFastOrSlow(t, q, src, &e)
				r = l.apply(r, src, &e)
			}
			m := new(dns.Msg)
			if err := m.Unpack(r); err != nil {
				t.Fatalf("slip does not parse: %v", err)
			}
			if m.Rcode != tc.rcode || m.Truncated != tc.tc || len(m.Answer)+len(m.Ns) != 0 || m.Id != be16(q) {
				t.Errorf("rcode %s TC %v records %d id %d, want %s TC %v no records id %d", dns.RcodeToString[m.Rcode], m.Truncated, len(m.Answer)+len(m.Ns), m.Id, dns.RcodeToString[tc.rcode], tc.tc, be16(q))
			}
			if len(m.Question) != 1 || m.Question[0].Name != tc.q.name {
				t.Errorf("question %v, want %s", m.Question, tc.q.name)
			}
			if (m.IsEdns0() != nil) != tc.opt || (cookieOf(m) != "") != tc.cookie {
				t.Errorf("OPT %v cookie %q, want OPT %v cookie %v", m.IsEdns0(), cookieOf(m), tc.opt, tc.cookie)
			}
			if ecsOf(m) != nil {
				t.Errorf("slip echoes ECS")
			}
		})
	}
}

// answerFastOrSlow answers q as the adapter does, without rate limiting.
func (tb *table) answerFastOrSlow(t testing.TB, q []byte, src netip.Addr, e *ednsOpt) []byte {
	t.Helper()
	if r, ok := tb.answerFast(q, src, false, nil, e, make([]byte, 0, 512)); ok {
		return r
	}
	*e = ednsOpt{}
	r, err := tb.answerSlow(q, src, false, nil, e)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRRLTableBounded(t *testing.T) {
	f := newFixture(t, setup{})
	c := testRRL()
	c.MaxTableSize = 20
	l, clk, buf := testLimiter(c)
	if n := len(l.sets) * l.ways; n > 20 || n < 16 {
		t.Fatalf("table of %d entries for max_table_size 20", n)
	}
	q := packMsg(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
	send := func(src netip.Addr) byte {
		clk.advance(time.Microsecond)
		r := f.answerBytes(q, src.String())
		orig := append([]byte(nil), r...)
		return outcome(l.apply(r, src, &ednsOpt{}), orig)
	}
	first := netip.MustParseAddr("10.0.0.1")
	for range 6 {
		send(first)
	}
	if got := send(first); got == 'P' {
		t.Fatal("first prefix not limited")
	}
	// Many other prefixes push the first out: it starts over, and its end
	// of limiting is logged.
	for i := range 1000 {
		send(netip.AddrFrom4([4]byte{10, 1 + byte(i>>8), byte(i), 1}))
	}
	if got := send(first); got != 'P' {
		t.Errorf("first prefix after eviction: %c, want a fresh account", got)
	}
	if !strings.Contains(buf.String(), "stopped limiting responses\" prefix=10.0.0.0/24") {
		t.Errorf("no log line for the evicted limited prefix:\n%s", buf)
	}
	orig := f.answerBytes(q, "10.9.9.9")
	buf2 := make([]byte, 0, 512)
	src := netip.MustParseAddr("10.9.9.9")
	if n := testing.AllocsPerRun(100, func() {
		clk.advance(time.Microsecond)
		l.apply(append(buf2[:0], orig...), src, &ednsOpt{})
	}); n > 0 {
		t.Errorf("%v allocations per rate-limited answer", n)
	}
}

func TestRRLLogs(t *testing.T) {
	f := newFixture(t, setup{})
	l, clk, buf := testLimiter(testRRL())
	q := packMsg(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
	flood := func(src string, n int) {
		for range n {
			l.apply(f.answerBytes(q, src), netip.MustParseAddr(src), &ednsOpt{})
		}
	}
	flood("192.0.2.1", 100)
	if got := strings.Count(buf.String(), "limiting responses"); got != 1 {
		t.Fatalf("%d start lines for one prefix, want 1:\n%s", got, buf)
	}
	for _, want := range []string{"prefix=192.0.2.0/24", "kind=answer", "qname=www.example.test."} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("start line lacks %s:\n%s", want, buf)
		}
	}
	l.sweep()
	if strings.Contains(buf.String(), "stopped") {
		t.Fatalf("stopped while still flooding:\n%s", buf)
	}
	clk.advance(6 * time.Second)
	l.sweep()
	if !strings.Contains(buf.String(), "stopped limiting responses") || !strings.Contains(buf.String(), "limited_for=6s") {
		t.Fatalf("no stop line after a quiet window:\n%s", buf)
	}
	// Log lines are limited themselves: 30 prefixes starting at once log
	// rrlLogBurst lines in all, and the next line after the period says
	// how many were left out.
	buf.b.Reset()
	l.logs = logLimiter{}
	for i := range 30 {
		flood(fmt.Sprintf("198.51.%d.1", i), 7)
	}
	if got := strings.Count(buf.String(), "\n"); got != rrlLogBurst {
		t.Errorf("%d log lines for 30 prefixes, want %d", got, rrlLogBurst)
	}
	l.logs.start = l.logs.start.Add(-rrlLogPeriod)
	flood("203.0.113.1", 7)
	if !strings.Contains(buf.String(), "suppressed=20") {
		t.Errorf("no count of suppressed lines:\n%s", buf)
	}
}

// udpClient is a UDP socket bound to a given loopback address.
func udpClient(t *testing.T, local string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(local), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// queriesSeen is the number of queries f's server has answered (before
// rate limiting).
func queriesSeen(t testing.TB, f *fixture) int {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "meridian_dns_queries_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int(n)
}

// burst sends q n times from c to f's server within a second, waits until
// the server has answered them all, and sorts what came back: full
// answers, truncated slips, BADCOOKIE slips; the rest were dropped.
func burst(t *testing.T, c *net.UDPConn, f *fixture, q []byte, n int) (answers, slips, badcookies int) {
	t.Helper()
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(f.addr))
	seen := queriesSeen(t, f)
	start := time.Now()
	for i := range n {
		if _, err := c.WriteToUDP(q, to); err != nil {
			t.Fatal(err)
		}
		if i%25 == 24 {
			time.Sleep(2 * time.Millisecond) // within the server's socket buffer
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("sending %d queries took %v", n, d)
	}
	for deadline := time.Now().Add(10 * time.Second); queriesSeen(t, f)-seen < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server answered %d of %d queries in 10s", queriesSeen(t, f)-seen, n)
		}
	}
	buf := make([]byte, 1500)
	for got := 0; got < n; got++ {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		k, _, err := c.ReadFromUDP(buf)
		if err != nil {
			break // all were answered or dropped before: the rest were dropped
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:k]); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		switch {
		case m.Rcode == dns.RcodeBadCookie:
			badcookies++
		case m.Truncated:
			slips++
		case len(m.Answer) > 0:
			answers++
		default:
			t.Fatalf("unexpected answer %v", m)
		}
	}
	return answers, slips, badcookies
}

// TestRRLOverUDP is the black-box check: 200 identical queries from one
// source within a second get a handful of answers, some slips and drops;
// TCP, another prefix, exempt prefixes and clients with a valid server
// cookie are answered.
func TestRRLOverUDP(t *testing.T) {
	q := packMsg(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
	start := func(t *testing.T, c *config.RRL) *fixture {
		f := newFixture(t, setup{})
		f.setRRL(t, c)
		f.listen(t)
		return f
	}
	t.Run("one source flooding", func(t *testing.T) {
		f := start(t, testRRL())
		answers, slips, _ := burst(t, udpClient(t, "127.0.0.1"), f, q, 200)
		drops := 200 - answers - slips
		t.Logf("200 queries: %d answers, %d slips, %d dropped", answers, slips, drops)
		if answers < 1 || answers > 10 || slips < 50 || drops < 50 {
			t.Errorf("%d answers, %d slips, %d dropped; want 1..10 answers and the rest about half slipped, half dropped", answers, slips, drops)
		}
		if got := counterValue(t, f.reg, "meridian_dns_rrl_total", map[string]string{"action": "slip"}); int(got) != slips {
			t.Errorf("slip counter %v, want %d", got, slips)
		}
		if got := counterValue(t, f.reg, "meridian_dns_rrl_total", map[string]string{"action": "drop"}); int(got) != drops {
			t.Errorf("drop counter %v, want %d", got, drops)
		}
		if r := f.exchange(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg(), "tcp"); len(r.Answer) != 1 || r.Truncated {
			t.Errorf("over TCP: %v, want the answer", r)
		}
		if a, _, _ := burst(t, udpClient(t, "127.0.1.2"), f, q, 1); a != 1 {
			t.Errorf("another /24 (127.0.1.2) not answered at once")
		}
		// Loopback addresses are accounts of their own (no spoofing
		// crosses loopback); a network's /24 is shared, see TestRRLAccounts.
		if a, _, _ := burst(t, udpClient(t, "127.0.0.2"), f, q, 1); a != 1 {
			t.Errorf("another source (127.0.0.2) not answered at once")
		}
	})
	t.Run("per-address accounts", func(t *testing.T) {
		c := testRRL()
		c.IPv4Prefix = 32
		f := start(t, c)
		if a, _, _ := burst(t, udpClient(t, "127.0.0.1"), f, q, 200); a > 10 {
			t.Errorf("%d answers to the flood", a)
		}
		if a, _, _ := burst(t, udpClient(t, "127.0.0.2"), f, q, 1); a != 1 {
			t.Errorf("127.0.0.2 not answered at once with ipv4_prefix 32")
		}
	})
	t.Run("exempt prefix", func(t *testing.T) {
		c := testRRL()
		c.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		f := start(t, c)
		if a, s, _ := burst(t, udpClient(t, "127.0.0.1"), f, q, 200); a != 200 {
			t.Errorf("exempt source: %d answers, %d slips of 200", a, s)
		}
	})
	t.Run("valid server cookie", func(t *testing.T) {
		f := start(t, testRRL())
		c := udpClient(t, "127.0.0.1")
		// Learn a cookie by flooding with a client cookie only: the slips
		// are BADCOOKIE and carry one.
		cq := question{name: "www.example.test.", qtype: dns.TypeA, cookie: "0102030405060708"}.msg()
		a, s, bad := burst(t, c, f, packMsg(t, cq), 50)
		if a > 10 || s != 0 || bad < 10 {
			t.Fatalf("client cookie only: %d answers, %d truncated, %d BADCOOKIE; want a few answers and BADCOOKIE slips", a, s, bad)
		}
		r := f.exchange(t, cq, "tcp")
		sc := cookieOf(r)
		if len(sc) != 48 {
			t.Fatalf("no server cookie over TCP: %v", r)
		}
		if a, s, bad := burst(t, c, f, packMsg(t, question{name: "www.example.test.", qtype: dns.TypeA, cookie: sc}.msg()), 200); a != 200 {
			t.Errorf("with a valid server cookie: %d answers, %d slips, %d BADCOOKIE of 200", a, s, bad)
		}
	})
}

// TestRRLStopLoggedWhenQuiet: a running server logs that a prefix stopped
// being limited about a window after its flood ends.
func TestRRLStopLoggedWhenQuiet(t *testing.T) {
	f := newFixture(t, setup{})
	c := testRRL()
	c.Window = config.Duration(time.Second)
	buf := &lockedBuffer{}
	f.s.rrl.Store(newLimiter(c, f.s.m, slog.New(slog.NewTextHandler(buf, nil)), nil))
	f.listen(t)
	q := packMsg(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
	burst(t, udpClient(t, "127.0.0.1"), f, q, 50)
	if !strings.Contains(buf.String(), "limiting responses") {
		t.Fatalf("flood not limited:\n%s", buf)
	}
	start := time.Now()
	for !strings.Contains(buf.String(), "stopped limiting responses") {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no stop line 10s after the flood:\n%s", buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("stop logged %v after the flood ended", time.Since(start).Round(time.Millisecond))
}
