package dnsserver

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestTruncation(t *testing.T) {
	f := newFixture(t, setup{})
	f.listen(t)
	cases := []struct {
		name    string
		q       question
		network string
		tc      bool
		answers int
	}{
		{"no EDNS: 512", question{name: "big.example.test.", qtype: dns.TypeTXT}, "udp", true, 0},
		{"EDNS 4096 capped at 1232", question{name: "big.example.test.", qtype: dns.TypeTXT, edns: true, size: 4096}, "udp", true, 0},
		{"EDNS below 512 counts as 512", question{name: "big.example.test.", qtype: dns.TypeTXT, edns: true, size: 100}, "udp", true, 0},
		{"TCP takes it whole", question{name: "big.example.test.", qtype: dns.TypeTXT, edns: true}, "tcp", false, 8},
		{"small answer fits", question{name: "www.example.test.", qtype: dns.TypeA, edns: true, size: 512}, "udp", false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &dns.Client{Net: tc.network, Timeout: 3 * time.Second, UDPSize: 65535}
			r, _, err := c.Exchange(tc.q.msg(), f.addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Truncated != tc.tc || len(r.Answer) != tc.answers {
				t.Errorf("TC %v with %d answers, want TC %v with %d", r.Truncated, len(r.Answer), tc.tc, tc.answers)
			}
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
				t.Errorf("rcode %s AA %v, want NOERROR AA", dns.RcodeToString[r.Rcode], r.Authoritative)
			}
			if o := r.IsEdns0(); tc.q.edns && (o == nil || o.UDPSize() != maxUDPSize) {
				t.Errorf("OPT %v, want one with buffer size %d", o, maxUDPSize)
			}
		})
	}
}

func TestEDNS(t *testing.T) {
	f := newFixture(t, setup{})
	f.listen(t)
	t.Run("DO is copied", func(t *testing.T) {
		r := f.exchange(t, question{name: "www.example.test.", qtype: dns.TypeA, do: true}.msg(), "udp")
		if o := r.IsEdns0(); o == nil || !o.Do() || o.Version() != 0 {
			t.Errorf("OPT %v, want version 0 with DO", o)
		}
	})
	t.Run("no OPT without EDNS", func(t *testing.T) {
		r := f.exchange(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg(), "udp")
		if o := r.IsEdns0(); o != nil {
			t.Errorf("OPT %v in the answer to a query without EDNS", o)
		}
	})
	t.Run("BADVERS", func(t *testing.T) {
		m := question{name: "www.example.test.", qtype: dns.TypeA, edns: true}.msg()
		m.IsEdns0().SetVersion(1)
		r := f.exchange(t, m, "udp")
		o := r.IsEdns0()
		if r.Rcode != dns.RcodeBadVers || o == nil || o.Version() != 0 || len(r.Answer) != 0 {
			t.Errorf("rcode %s OPT %v answers %d, want BADVERS, an OPT of version 0, no answers", dns.RcodeToString[r.Rcode], o, len(r.Answer))
		}
	})
}

// rawQuery is a valid query for www.example.test A with EDNS, to corrupt.
func rawQuery(t testing.TB, edit func(m *dns.Msg)) []byte {
	t.Helper()
	m := question{name: "www.example.test.", qtype: dns.TypeA, edns: true}.msg()
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withECS returns a query whose ECS option data is data, as sent.
func withECS(t testing.TB, data []byte) []byte {
	b := rawQuery(t, func(m *dns.Msg) {
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data}}
	})
	return b
}

func TestMalformedQueries(t *testing.T) {
	f := newFixture(t, setup{})
	good := rawQuery(t, nil)
	set := func(b []byte, off int, v ...byte) []byte {
		c := append([]byte(nil), b...)
		copy(c[off:], v)
		return c
	}
	twoOPT := rawQuery(t, func(m *dns.Msg) { m.Extra = append(m.Extra, m.Extra[0]) })
	cases := []struct {
		name  string
		q     []byte
		rcode int // -1: no answer
	}{
		{"empty", nil, -1},
		{"short header", good[:11], -1},
		{"QR set", set(good, 2, good[2]|0x80), -1},
		{"cut in the question", good[:20], dns.RcodeFormatError},
		{"no question", set(good, 4, 0, 0), dns.RcodeFormatError},
		{"two questions", set(good, 4, 0, 2), dns.RcodeFormatError},
		{"label too long", set(good, headerLen, 64), dns.RcodeFormatError},
		{"pointer loop in the question", set(good, headerLen, 0xC0, headerLen), dns.RcodeFormatError},
		{"NOTIFY", set(good, 2, 4<<3), dns.RcodeNotImplemented},
		{"UPDATE", set(good, 2, 5<<3), dns.RcodeNotImplemented},
		{"additional count beyond the data", set(good, 10, 0, 3), dns.RcodeFormatError},
		{"two OPT records", twoOPT, dns.RcodeFormatError},
		{"OPT not at the root", rawQuery(t, func(m *dns.Msg) { m.Extra[0].Header().Name = "x." }), dns.RcodeFormatError},
		{"ECS family 3", withECS(t, []byte{0, 3, 24, 0, 1, 2, 3}), dns.RcodeFormatError},
		{"ECS IPv4 source 33", withECS(t, []byte{0, 1, 33, 0, 1, 2, 3, 4, 5}), dns.RcodeFormatError},
		{"ECS IPv6 source 129", withECS(t, append([]byte{0, 2, 129, 0}, make([]byte, 17)...)), dns.RcodeFormatError},
		{"ECS scope in a query", withECS(t, []byte{0, 1, 24, 8, 81, 2, 69}), dns.RcodeFormatError},
		{"ECS too many address octets", withECS(t, []byte{0, 1, 24, 0, 81, 2, 69, 0}), dns.RcodeFormatError},
		{"ECS too few address octets", withECS(t, []byte{0, 1, 24, 0, 81, 2}), dns.RcodeFormatError},
		{"ECS bits beyond source", withECS(t, []byte{0, 1, 23, 0, 81, 2, 69}), dns.RcodeFormatError},
		{"ECS family 0 with a source", withECS(t, []byte{0, 0, 8, 0, 1}), dns.RcodeFormatError},
		{"ECS shorter than its header", withECS(t, []byte{0, 1}), dns.RcodeFormatError},
		{"ECS family 0 source 0 is fine", withECS(t, []byte{0, 0, 0, 0}), dns.RcodeSuccess},
		{"ECS repeated", rawQuery(t, func(m *dns.Msg) {
			m.IsEdns0().Option = []dns.EDNS0{
				&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 0, 81, 2, 69}},
				&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 0, 81, 2, 69}},
			}
		}), dns.RcodeFormatError},
		{"unknown option ignored", rawQuery(t, func(m *dns.Msg) {
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
		}), dns.RcodeSuccess},
		{"option overruns the OPT", set(good, len(good)-2, 0, 9), dns.RcodeFormatError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.answerBytes(tc.q, "192.0.2.1")
			if tc.rcode < 0 {
				if r != nil {
					t.Fatalf("answered %x, want nothing", r)
				}
				return
			}
			if r == nil {
				t.Fatalf("no answer, want %s", dns.RcodeToString[tc.rcode])
			}
			var m dns.Msg
			if err := m.Unpack(r); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if m.Rcode != tc.rcode || !m.Response || m.Id != be16(tc.q) {
				t.Errorf("rcode %s response %v id %d, want %s true %d", dns.RcodeToString[m.Rcode], m.Response, m.Id, dns.RcodeToString[tc.rcode], be16(tc.q))
			}
			if tc.rcode == dns.RcodeFormatError && ecsOf(&m) != nil {
				t.Errorf("FORMERR echoes ECS %v", ecsOf(&m))
			}
		})
	}
	if got := counterValue(t, f.reg, "meridian_dns_panics_total", nil); got != 0 {
		t.Errorf("panics = %v, want 0", got)
	}
}

func TestGarbageOverUDPKeepsServing(t *testing.T) {
	f := newFixture(t, setup{})
	f.listen(t)
	c, err := net.Dial("udp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, g := range [][]byte{{1}, make([]byte, 12), []byte("garbage that is not dns at all"), make([]byte, 9000)} {
		if _, err := c.Write(g); err != nil {
			t.Fatal(err)
		}
	}
	r := f.exchange(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg(), "udp")
	if len(r.Answer) != 1 {
		t.Errorf("after garbage: %v", r)
	}
}

// writeTCP sends length-prefixed messages in one write.
func writeTCP(t *testing.T, c net.Conn, msgs ...*dns.Msg) {
	t.Helper()
	var buf []byte
	for _, m := range msgs {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(b)))
		buf = append(buf, b...)
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
}

func readTCP(t *testing.T, c net.Conn) *dns.Msg {
	t.Helper()
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatalf("reading length: %v", err)
	}
	b := make([]byte, be16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTCPPipelining(t *testing.T) {
	f := newFixture(t, setup{})
	f.listen(t)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	names := []string{"www.example.test.", "api.example.test.", "nope.example.test.", "big.example.test.", "example.org."}
	var msgs []*dns.Msg
	for i, n := range names {
		m := question{name: n, qtype: dns.TypeA, edns: true}.msg()
		if n == "big.example.test." {
			m.Question[0].Qtype = dns.TypeTXT
		}
		m.Id = uint16(100 + i)
		msgs = append(msgs, m)
	}
	writeTCP(t, c, msgs...)
	wantRcode := []int{dns.RcodeSuccess, dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeSuccess, dns.RcodeRefused}
	for i := range msgs {
		r := readTCP(t, c)
		if r.Id != uint16(100+i) || r.Rcode != wantRcode[i] {
			t.Errorf("answer %d: id %d rcode %s, want id %d rcode %s", i, r.Id, dns.RcodeToString[r.Rcode], 100+i, dns.RcodeToString[wantRcode[i]])
		}
	}
	// The connection stays open for more.
	writeTCP(t, c, msgs[0])
	if r := readTCP(t, c); r.Id != 100 || len(r.Answer) != 1 {
		t.Errorf("second round: %v", r)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	f := newFixture(t, setup{})
	f.s.opts.TCPIdleTimeout = 200 * time.Millisecond
	f.listen(t)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeTCP(t, c, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	readTCP(t, c)
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read after idling: %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v, want about 200ms of idling", d)
	}
}

func TestTCPConnectionLimit(t *testing.T) {
	f := newFixture(t, setup{})
	f.s.opts.MaxTCPConns = 2
	f.listen(t)
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		writeTCP(t, c, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
		readTCP(t, c) // answered: tracked
	}
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("third connection answered, want it closed")
	}
	open[0].Close()
	open = open[1:]
	// Once one closes, new connections are served again (the server
	// notices the close asynchronously: poll).
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		writeTCP(t, c, question{name: "www.example.test.", qtype: dns.TypeA}.msg())
		var l [2]byte
		_, err = io.ReadFull(c, l[:])
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCaseEchoedByteForByte(t *testing.T) {
	f := newFixture(t, setup{})
	for _, name := range []string{"WwW.eXaMpLe.TeSt.", "API.EXAMPLE.TEST.", "NoSuch.Example.Test.", "x.EXAMPLE.org."} {
		q := rawQuery(t, func(m *dns.Msg) { m.Question[0].Name = name })
		r := f.answerBytes(q, "192.0.2.1")
		qlen := headerLen + len(name) + 1 + 4
		if string(r[headerLen:qlen]) != string(q[headerLen:qlen]) {
			t.Errorf("%s: question %q echoed as %q", name, q[headerLen:qlen], r[headerLen:qlen])
		}
	}
}

func TestNotLoaded(t *testing.T) {
	s := New(Options{})
	r := s.answer(rawQuery(t, nil), netip.MustParseAddr("192.0.2.1"), false, nil)
	var m dns.Msg
	if err := m.Unpack(r); err != nil || m.Rcode != dns.RcodeServerFailure {
		t.Errorf("answer before Update: %v %v, want SERVFAIL", m.Rcode, err)
	}
}

func TestPanicIsServfail(t *testing.T) {
	f := newFixture(t, setup{})
	broken := *f.s.table.Load()
	broken.svcs = nil // steered names now index out of range
	f.s.table.Store(&broken)
	r := f.answerBytes(packMsg(t, question{name: "api.example.test.", qtype: dns.TypeA}.msg()), "192.0.2.1")
	var m dns.Msg
	if err := m.Unpack(r); err != nil || m.Rcode != dns.RcodeServerFailure {
		t.Errorf("answer: rcode %v err %v, want SERVFAIL", m.Rcode, err)
	}
	if got := counterValue(t, f.reg, "meridian_dns_panics_total", nil); got != 1 {
		t.Errorf("panics = %v, want 1", got)
	}
}
