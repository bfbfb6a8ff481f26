package anycast

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/internal/bgptest"
)

// soaServer is an authoritative DNS server for example.test that answers
// SOA queries, or REFUSED while failing is set.
func soaServer(t *testing.T, failing *atomic.Bool) net.Addr {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if failing.Load() {
			m.Rcode = dns.RcodeRefused
		} else {
			m.Authoritative = true
			soa, _ := dns.NewRR("example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 60")
			m.Answer = append(m.Answer, soa)
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr()
}

// TestAnycastFallRiseHoldDown: the prefixes are announced after rise
// passing rounds, withdrawn after fall failing ones, and announced again
// only once rise rounds passed and hold_down has gone by since the last
// failure.
func TestAnycastFallRiseHoldDown(t *testing.T) {
	var failing atomic.Bool
	dnsAddr := soaServer(t, &failing)
	col := bgptest.StartCollector(t, 65000, 65001)
	cfg := bgpConfig(65001, 65000, col.Port)
	holdDown := cfg.SelfCheck.HoldDown.D() // 500ms; interval 100ms, fall 3, rise 2
	var ready atomic.Bool
	a, err := New(cfg, Options{
		Logger:  testLogger(),
		Ready:   ready.Load,
		Targets: func() Targets { return Targets{DNS: []net.Addr{dnsAddr}, Zones: []string{"example.test"}} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	bgptest.WaitFor(t, 20*time.Second, "session established", func() bool { return col.Established(t) })
	time.Sleep(3 * cfg.SelfCheck.Interval.D()) // rounds pass, but the node is not ready
	if a.Announced() || col.Has(t, v4Prefix) {
		t.Fatal("announced before the node was ready")
	}
	if got := a.Status().Reason; got != "node not ready" {
		t.Errorf("reason: got %q, want node not ready", got)
	}
	ready.Store(true)
	bgptest.WaitFor(t, 5*time.Second, "announced once ready", func() bool { return col.Has(t, v4Prefix) })

	failing.Store(true)
	failed := time.Now()
	bgptest.WaitFor(t, 5*time.Second, "withdrawn after fall", func() bool { return !col.Has(t, v4Prefix) })
	if st := a.Status(); st.Announced || st.Reason != "self-check failing" || st.SelfCheck.Passing {
		t.Errorf("status after fall: %+v", st)
	}
	t.Logf("self-check failing → withdrawn at the collector: %v", time.Since(failed))

	failing.Store(false)
	recovered := time.Now()
	bgptest.WaitFor(t, 5*time.Second, "announced again", func() bool { return col.Has(t, v4Prefix) })
	if el := time.Since(recovered); el < holdDown-cfg.SelfCheck.Interval.D() {
		t.Errorf("announced again %v after recovery, before the %v hold-down", el, holdDown)
	}

	// Drain and shutdown withdraw at once, whatever the self-check says.
	a.SetDrained(true)
	if a.Announced() {
		t.Fatal("still announced after SetDrained(true) returned")
	}
	bgptest.WaitFor(t, 2*time.Second, "withdrawn on drain", func() bool { return !col.Has(t, v4Prefix) })
	a.SetDrained(false)
	bgptest.WaitFor(t, 2*time.Second, "back after undrain", func() bool { return col.Has(t, v4Prefix) })
	a.Shutdown()
	if a.Announced() {
		t.Fatal("still announced after Shutdown returned")
	}
	bgptest.WaitFor(t, 2*time.Second, "withdrawn on shutdown", func() bool { return !col.Has(t, v4Prefix) })
	time.Sleep(3 * cfg.SelfCheck.Interval.D())
	if a.Announced() {
		t.Fatal("announced again after Shutdown")
	}
}
