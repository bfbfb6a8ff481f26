package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/bgptest"
)

var (
	anyV4 = netip.MustParsePrefix("198.51.100.53/32")
	anyV6 = netip.MustParsePrefix("2001:db8::53/128")
)

// bgpSection is a bgp config with one eBGP session to a collector on port
// and a fast self-check.
func bgpSection(port int, holdDown string) string {
	return fmt.Sprintf(`
bgp:
  asn: 65001
  router_id: 127.0.0.2
  peers:
    - {address: 127.0.0.1, port: %d, asn: 65000, local_address: 127.0.0.2}
  announce: [198.51.100.53/32, "2001:db8::53/128"]
  next_hop: ["2001:db8::1"]
  communities: ["65000:100"]
  self_check: {interval: 100ms, timeout: 100ms, fall: 3, rise: 2, hold_down: %s}
`, port, holdDown)
}

func readyStatus(t *testing.T, tn *testNode) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + tn.Addr("admin").String() + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// answers reports whether the node's DNS listener answers a query.
func answers(tn *testNode) bool {
	m := new(dns.Msg)
	m.SetQuestion("api.example.test.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 500 * time.Millisecond}).Exchange(m, tn.Addr("dns/0").String())
	return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
}

// TestAnycastAnnounceDrainSelfCheck: the prefixes reach a GoBGP route
// collector once the node is ready; a drain withdraws them at once while
// DNS keeps answering, an undrain brings them back; a DNS listener that
// stops answering withdraws them after fall rounds.
func TestAnycastAnnounceDrainSelfCheck(t *testing.T) {
	col := bgptest.StartCollector(t, 65000, 65001)
	tn := startNode(t, bgpSection(col.Port, "300ms"))
	bgptest.WaitFor(t, 20*time.Second, "prefixes at the collector", func() bool {
		return col.Has(t, anyV4) && col.Has(t, anyV6)
	})
	bgptest.WaitFor(t, 2*time.Second, "node ready", tn.Ready)
	if code, body := readyStatus(t, tn); code != 200 {
		t.Fatalf("/health/ready: got %d %q, want 200", code, body)
	}
	st := tn.Status()
	if st.BGP == nil || !st.BGP.Announced || len(st.BGP.AnnouncedPrefixes) != 2 || len(st.BGP.Peers) != 1 ||
		st.BGP.Peers[0].State != "established" || st.BGP.Peers[0].Uptime == "" {
		t.Fatalf("status bgp: got %+v", st.BGP)
	}
	checkBGPMetrics(t, tn, 1, 1)

	// Drain: withdrawn before SetDrained returns; DNS still answers.
	start := time.Now()
	dv, err := tn.SetDrained(true, Actor{Token: "ops", Reason: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if !dv.Drained || dv.Ready || dv.Announced == nil || *dv.Announced {
		t.Fatalf("drain view: got %+v", dv)
	}
	took := bgptest.WaitFor(t, 5*time.Second, "prefixes withdrawn at the collector", func() bool {
		return !col.Has(t, anyV4) && !col.Has(t, anyV6)
	})
	t.Logf("drain → withdrawn at the GoBGP collector: %v (poll started %v after the call)", time.Since(start), time.Since(start)-took)
	if code, body := readyStatus(t, tn); code != 503 || body != "drained" {
		t.Errorf("/health/ready while drained: got %d %q, want 503 drained", code, body)
	}
	if !answers(tn) {
		t.Error("a drained node must keep answering DNS")
	}
	checkBGPMetrics(t, tn, 1, 0)
	if a := tn.Audit(1); len(a) != 1 || a[0].Action != "drain" || a[0].Token != "ops" || a[0].Reason != "deploy" ||
		a[0].Old != "serving" || a[0].New != "drained" {
		t.Errorf("audit: got %+v", a)
	}
	if st := tn.Status(); st.Drained == nil || st.Drained.Reason != "deploy" || st.BGP.Reason != "drained" {
		t.Errorf("status while drained: drained %+v bgp reason %q", st.Drained, st.BGP.Reason)
	}

	// Undrain: back at once (no hold-down: the self-check never failed).
	if _, err := tn.SetDrained(false, Actor{Token: "ops", Reason: "deployed"}); err != nil {
		t.Fatal(err)
	}
	bgptest.WaitFor(t, 5*time.Second, "prefixes back at the collector", func() bool {
		return col.Has(t, anyV4) && col.Has(t, anyV6)
	})
	bgptest.WaitFor(t, 2*time.Second, "ready again", tn.Ready)
	if a := tn.Audit(1); len(a) != 1 || a[0].Action != "undrain" || a[0].New != "serving" {
		t.Errorf("audit: got %+v", a)
	}

	// Self-check: the DNS listener stops answering.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := tn.dns.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	bgptest.WaitFor(t, 5*time.Second, "withdrawn after the self-check fails", func() bool {
		return !col.Has(t, anyV4) && !col.Has(t, anyV6)
	})
	t.Logf("dns stopped → withdrawn at the collector: %v (interval 100ms, fall 3)", time.Since(start))
	if code, body := readyStatus(t, tn); code != 503 || body != "bgp prefixes withdrawn" {
		t.Errorf("/health/ready after the self-check failed: got %d %q", code, body)
	}
	if st := tn.Status(); st.BGP.Reason != "self-check failing" || st.BGP.SelfCheck.LastError == "" {
		t.Errorf("status: got reason %q, last error %q", st.BGP.Reason, st.BGP.SelfCheck.LastError)
	}
}

func checkBGPMetrics(t *testing.T, tn *testNode, peerUp, announced float64) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP meridian_bgp_announced 1 while the prefix is announced to the BGP peers, 0 while it is withdrawn.
# TYPE meridian_bgp_announced gauge
meridian_bgp_announced{prefix="198.51.100.53/32"} %[2]v
meridian_bgp_announced{prefix="2001:db8::53/128"} %[2]v
# HELP meridian_bgp_peer_up 1 while the BGP session to the peer is established, else 0.
# TYPE meridian_bgp_peer_up gauge
meridian_bgp_peer_up{peer="127.0.0.1"} %[1]v
`, peerUp, announced)
	if err := testutil.GatherAndCompare(tn.Registry(), strings.NewReader(want), "meridian_bgp_announced", "meridian_bgp_peer_up"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(tn.Registry(), "meridian_bgp_announced", "meridian_bgp_peer_up")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestAnycastShutdownWithdrawsFirst: Shutdown (what SIGTERM runs)
// withdraws the prefixes at once, before the drain period, and DNS is
// still answered after the withdrawal reached the collector.
func TestAnycastShutdownWithdrawsFirst(t *testing.T) {
	col := bgptest.StartCollector(t, 65000, 65001)
	tn := startNode(t, bgpSection(col.Port, "300ms"))
	bgptest.WaitFor(t, 20*time.Second, "prefixes at the collector", func() bool { return col.Has(t, anyV4) })
	// The test config's drain is 50ms; make it long enough to look inside.
	tn.mu.Lock()
	cfg := *tn.cfg
	cfg.Node.Drain = config.Duration(2 * time.Second)
	tn.cfg = &cfg
	tn.mu.Unlock()

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- tn.Shutdown(context.Background()) }()
	bgptest.WaitFor(t, 2*time.Second, "withdrawn at the collector", func() bool { return !col.Has(t, anyV4) && !col.Has(t, anyV6) })
	withdrawn := time.Since(start)
	t.Logf("shutdown → withdrawn at the GoBGP collector: %v", withdrawn)
	if !answers(tn) {
		t.Fatal("DNS must still answer after the withdrawal, during the drain")
	}
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) before the drain period; the withdrawal must come first", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("shutdown took %v, less than the 2s drain", el)
	}
	if answers(tn) {
		t.Error("DNS still answers after shutdown")
	}
}

// TestDrainWithoutBGP: a drain turns readiness 503 without BGP too, and
// survives a restart until undrained.
func TestDrainWithoutBGP(t *testing.T) {
	tn := startNode(t, "")
	if _, err := tn.SetDrained(true, Actor{Token: "ops", Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	if code, body := readyStatus(t, tn); code != 503 || body != "drained" {
		t.Fatalf("/health/ready: got %d %q, want 503 drained", code, body)
	}
	if !answers(tn) {
		t.Error("a drained node must keep answering DNS")
	}
	if st := tn.Status(); st.BGP != nil || st.Drained == nil || st.Drained.Reason != "maintenance" {
		t.Errorf("status: bgp %+v drained %+v", st.BGP, st.Drained)
	}
	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startFromFile(t, tn.path)
	t.Cleanup(func() { _ = n2.Close() })
	waitFor(t, 3*time.Second, "listeners bound and health checked", n2.fitToAnnounce)
	if n2.Ready() {
		t.Fatal("a node drained before a restart must come back drained")
	}
	if _, err := n2.SetDrained(false, Actor{Token: "ops"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "ready after undrain", n2.Ready)
}
