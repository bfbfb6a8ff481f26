package dnsserver

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// histogram returns the sample count and sum of the DNS answer duration
// histogram for proto.
func histogram(t *testing.T, reg *prometheus.Registry, proto string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meridian_dns_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == proto {
				return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no meridian_dns_request_duration_seconds{proto=%q}", proto)
	return 0, 0
}

func TestAnswerDurationHistogram(t *testing.T) {
	f := newFixture(t, setup{})
	f.listen(t)
	for _, proto := range []string{"udp", "tcp"} {
		if n, _ := histogram(t, f.reg, proto); n != 0 {
			t.Fatalf("%s before any query: %d samples, want 0", proto, n)
		}
	}
	start := time.Now()
	const udpQueries, tcpQueries = 5, 3
	for range udpQueries {
		f.exchange(t, question{name: "api.example.test.", qtype: dns.TypeA}.msg(), "udp")
	}
	for range tcpQueries {
		f.exchange(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg(), "tcp")
	}
	elapsed := time.Since(start).Seconds()
	for _, c := range []struct {
		proto string
		want  uint64
	}{{"udp", udpQueries}, {"tcp", tcpQueries}} {
		// The UDP count is bumped after the answer is sent: poll for it.
		deadline := time.Now().Add(5 * time.Second)
		n, sum := histogram(t, f.reg, c.proto)
		for n < c.want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			n, sum = histogram(t, f.reg, c.proto)
		}
		if n != c.want {
			t.Errorf("%s: %d samples, want %d", c.proto, n, c.want)
		}
		if sum <= 0 || sum > elapsed {
			t.Errorf("%s: samples sum to %gs, want more than 0 and at most the %gs the queries took", c.proto, sum, elapsed)
		}
	}
}

func TestPlainUDPAnswerDuration(t *testing.T) {
	f := newFixture(t, setup{})
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := plainUDP{pc}
	done := make(chan struct{})
	go func() {
		u.serve(f.s)
		close(done)
	}()
	defer func() {
		u.Close()
		<-done
	}()
	f.addr = pc.LocalAddr().String()
	f.exchange(t, question{name: "api.example.test.", qtype: dns.TypeA}.msg(), "udp")
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := histogram(t, f.reg, "udp"); n != 1; n, _ = histogram(t, f.reg, "udp") {
		if time.Now().After(deadline) {
			t.Fatalf("plain udp: %d samples, want 1", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
