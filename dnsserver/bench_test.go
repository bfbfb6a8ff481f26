package dnsserver

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
)

// benchFixture is the test configuration with the built-in GeoIP database,
// as the benchmark harness's peers use real data.
func benchFixture(b *testing.B) *fixture {
	b.Helper()
	f := newFixture(b, setup{})
	db, err := geo.Open("")
	if err != nil {
		b.Fatal(err)
	}
	f.geo = db
	if err := f.s.Update(f.input(b, setup{})); err != nil {
		b.Fatal(err)
	}
	return f
}

// ecsQueries are n queries for api.example.test A, each with the ECS
// option of a random /24 from the harness's networks (fixed seed).
func ecsQueries(b *testing.B, n int) [][]byte {
	nets := []string{"2.0.0.0", "81.0.0.0", "89.0.0.0", "175.0.0.0", "202.0.0.0", "216.0.0.0", "50.0.0.0", "100.0.0.0", "130.0.0.0"}
	rng := rand.New(rand.NewSource(1))
	out := make([][]byte, n)
	for i := range out {
		a := netip.MustParseAddr(nets[rng.Intn(len(nets))]).As4()
		v := binary.BigEndian.Uint32(a[:]) | uint32(rng.Int63())&0x00FFFF00
		binary.BigEndian.PutUint32(a[:], v)
		m := question{name: "api.example.test.", qtype: dns.TypeA, size: 1232}.msg()
		m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IP(a[:])}}
		out[i] = packMsg(b, m)
	}
	return out
}

func BenchmarkAnswer(b *testing.B) {
	f := benchFixture(b)
	src := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		name string
		qs   [][]byte
	}{
		{"static", [][]byte{packMsg(b, question{name: "www.example.test.", qtype: dns.TypeA}.msg())}},
		{"steered", [][]byte{packMsg(b, question{name: "api.example.test.", qtype: dns.TypeA}.msg())}},
		{"steered-ecs", ecsQueries(b, 20000)},
		{"nxdomain", [][]byte{packMsg(b, question{name: "nope.example.test.", qtype: dns.TypeA, edns: true}.msg())}},
		{"general-path", [][]byte{packMsg(b, question{name: "foo.wild.example.test.", qtype: dns.TypeA}.msg())}},
	}
	// Clients from 256 /24s: no account reaches the charged rate below.
	srcs := make([]netip.Addr, 256)
	for i := range srcs {
		srcs[i] = netip.AddrFrom4([4]byte{198, 18, byte(i), 1})
	}
	run := func(name string, qs [][]byte, src netip.Addr) {
		b.Run(name, func(b *testing.B) {
			out := make([]byte, 0, outSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := qs[i%len(qs)]
				from := src
				if !src.IsLoopback() {
					from = srcs[i%len(srcs)]
				}
				i++
				if r := f.s.answer(q, from, false, out); len(r) == 0 {
					b.Fatal("no answer")
				}
			}
		})
	}
	for _, c := range cases {
		run(c.name, c.qs, src)
	}
	// With rate limiting on: the harness's case, its clients exempt, and
	// answers charged to accounts (a rate no benchmark reaches), for
	// clients spread over many /24s.
	rrl := &config.RRL{ResponsesPerSecond: 1000000000 / 1000, Window: config.Duration(time.Second), Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, MaxTableSize: 100000}
	rrl.Exempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	f.setRRL(b, rrl)
	run("rrl-exempt/static", cases[0].qs, src)
	run("rrl-exempt/steered-ecs", cases[2].qs, src)
	rrl.Exempt = nil
	rrl.ResponsesPerSecond = 1000000
	f.setRRL(b, rrl)
	spread := srcs[0] // any non-loopback source: spread over srcs
	run("rrl-charged/static", cases[0].qs, spread)
	run("rrl-charged/steered-ecs", cases[2].qs, spread)
	run("rrl-charged/nxdomain", cases[3].qs, spread)
	// A valid server cookie skips the accounts.
	var c cookieOpt
	c.parse([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.s.jar.check(&c, src)
	ck := question{name: "www.example.test.", qtype: dns.TypeA, cookie: hex.EncodeToString(c.client[:]) + hex.EncodeToString(c.server[:])}
	run("rrl-cookie/static", [][]byte{packMsg(b, ck.msg())}, src)
	f.setRRL(b, nil)
	run("cookie/static", [][]byte{packMsg(b, ck.msg())}, src)
}

// BenchmarkRRLAccount measures charging an account, for one client and
// for clients spread over a full table, on two goroutines.
func BenchmarkRRLAccount(b *testing.B) {
	f := benchFixture(b)
	r := f.answerBytes(packMsg(b, question{name: "www.example.test.", qtype: dns.TypeA}.msg()), "192.0.2.1")
	m, _ := newMetrics(nil)
	l := newLimiter(&config.RRL{ResponsesPerSecond: 1000000, Window: config.Duration(time.Second), Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, MaxTableSize: 100000}, m, slog.New(slog.DiscardHandler), nil)
	for _, spread := range []int{1, 1 << 20} {
		b.Run(fmt.Sprintf("prefixes=%d", spread), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, 512)
				i := uint32(rand.Int31())
				for pb.Next() {
					i++
					v := i % uint32(spread) << 8
					src := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 1})
					l.apply(append(buf[:0], r...), src, &ednsOpt{})
				}
			})
		})
	}
}

// BenchmarkUDP measures queries over loopback UDP end to end: one client
// socket keeping window queries in flight.
func BenchmarkUDP(b *testing.B) {
	f := benchFixture(b)
	f.listen(b)
	for _, window := range []int{1, 32} {
		b.Run(map[int]string{1: "sequential", 32: "window32"}[window], func(b *testing.B) {
			c, err := net.Dial("udp", f.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			q := packMsg(b, question{name: "api.example.test.", qtype: dns.TypeA}.msg())
			buf := make([]byte, 1500)
			b.ReportAllocs()
			sent, recvd := 0, 0
			for b.Loop() {
				for sent-recvd < window {
					if _, err := c.Write(q); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
				recvd++
			}
			for recvd < sent {
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
				recvd++
			}
		})
	}
}
