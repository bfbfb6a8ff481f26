package dnsserver

import (
	"encoding/binary"
	"math/rand"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

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
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			out := make([]byte, 0, outSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := c.qs[i%len(c.qs)]
				i++
				if r := f.s.answer(q, src, false, out); len(r) == 0 {
					b.Fatal("no answer")
				}
			}
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
