package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/internal/bgptest"
)

// bgpRouter is the BGP peer of an anycast test (bird2 or FRR's bgpd).
type bgpRouter interface {
	Has(t testing.TB, prefix netip.Prefix) bool
	Established(t testing.TB) bool
}

// anycastNode is a meridian process whose BGP speaker has one peer, a
// router on 127.0.0.1 listening on its own port, with the TCP MD5 key
// "e2e-md5-key"; its admin API takes the write token "ops-secret".
type anycastNode struct {
	t       *testing.T
	child   *child
	admin   string
	dnsPort int
}

// startAnycastNode starts a node named name announcing prefixes to the
// router on routerPort; bgpExtra is more of the bgp section, indented by
// two spaces (empty for none).
func startAnycastNode(t *testing.T, name string, routerPort int, bgpExtra string, prefixes ...netip.Prefix) *anycastNode {
	t.Helper()
	dir := t.TempDir()
	for file, secret := range map[string]string{"bgp.key": "e2e-md5-key", "ops.token": "ops-secret"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	announce := make([]string, len(prefixes))
	for i, p := range prefixes {
		announce[i] = fmt.Sprintf("%q", p)
	}
	dnsPort, adminPort := freePort(t), freePort(t)
	path := filepath.Join(dir, "meridian.yaml")
	cfg := fmt.Sprintf(`
node: {name: %s, drain: 2s, shutdown_timeout: 2s}
listen: {dns: ["127.0.0.1:%d"], admin: "127.0.0.1:%d"}
admin: {tokens: [{name: ops, role: write, secret_file: ops.token}]}
state: {path: %s}
bgp:
  asn: 65001
  router_id: 127.0.0.2
  peers:
    - {address: 127.0.0.1, port: %d, asn: 65000, local_address: 127.0.0.2, password_file: bgp.key, multihop: 2}
  announce: [%s]
  self_check: {interval: 200ms, timeout: 200ms, fall: 3, rise: 2, hold_down: 1s}
%s
regions:
  - name: a
    endpoints: [{address: 192.0.2.1}]
    health: {type: none}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
services:
  - {name: api, hostnames: [api.example.test], policy: failover, regions: [a]}
`, name, dnsPort, adminPort, filepath.Join(dir, "state.json"), routerPort, strings.Join(announce, ", "), bgpExtra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &anycastNode{t: t, child: startChild(t, "run", "--config", path), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), dnsPort: dnsPort}
}

// ready is the status of /health/ready, 0 when it cannot be asked.
func (n *anycastNode) ready() int {
	resp, err := http.Get(n.admin + "/health/ready")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// answers reports whether the node answers a DNS query for its service.
func (n *anycastNode) answers() bool {
	m := new(dns.Msg)
	m.SetQuestion("api.example.test.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 500 * time.Millisecond}).Exchange(m, fmt.Sprintf("127.0.0.1:%d", n.dnsPort))
	return err == nil && len(r.Answer) == 1
}

// ctl runs `meridian ctl` against the node and returns its output.
func (n *anycastNode) ctl(args ...string) string {
	n.t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"ctl", "--admin", n.admin, "--token", "ops-secret"}, args...)
	if code := run(all, &out, &errb); code != 0 {
		n.t.Fatalf("meridian %s: exit %d: %s%s", strings.Join(all, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// withdrawCycle drains the node, undrains it, and stops it with SIGTERM,
// waiting each time for the router to see it: all of prefixes in its
// table, or none. While drained the node is not ready, answers DNS and
// keeps its session; after SIGTERM it answers DNS during node.drain and
// then exits cleanly. It logs how long each withdrawal took to reach the
// router, from the command.
func (n *anycastNode) withdrawCycle(router bgpRouter, name string, prefixes ...netip.Prefix) {
	t := n.t
	t.Helper()
	all := func() bool {
		for _, p := range prefixes {
			if !router.Has(t, p) {
				return false
			}
		}
		return true
	}
	none := func() bool {
		for _, p := range prefixes {
			if router.Has(t, p) {
				return false
			}
		}
		return true
	}

	start := time.Now()
	if out := n.ctl("drain", "--reason", "e2e"); !strings.Contains(out, "drained: readiness 503, bgp prefixes withdrawn") {
		t.Errorf("ctl drain: got %q", out)
	}
	bgptest.WaitFor(t, 5*time.Second, "prefixes withdrawn at "+name+" after drain", none)
	drainTook := time.Since(start)
	if code := n.ready(); code != 503 {
		t.Errorf("/health/ready while drained: got %d, want 503", code)
	}
	if !n.answers() {
		t.Error("a drained node must keep answering DNS")
	}
	if !router.Established(t) {
		t.Error("draining closed the session; it must stay up")
	}

	n.ctl("undrain", "--reason", "e2e done")
	bgptest.WaitFor(t, 10*time.Second, "prefixes back at "+name+" after undrain", all)

	if err := n.child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	bgptest.WaitFor(t, 5*time.Second, "prefixes withdrawn at "+name+" after SIGTERM", none)
	termTook := time.Since(start)
	if !n.answers() {
		t.Error("after the withdrawal, during node.drain, DNS must still be answered")
	}
	select {
	case err := <-n.child.exited:
		n.child.exited <- err
		t.Fatalf("the process exited (%v) before the withdrawal had been seen and DNS checked", err)
	default:
	}
	t.Logf("ctl drain → routes gone at %s: %v; SIGTERM → routes gone at %s: %v (polled every 5 ms)", name, drainTook, name, termTook)
	if drainTook > time.Second || termTook > time.Second {
		t.Logf("warning: above the 1 s goal (a loaded machine?)")
	}
	select {
	case err := <-n.child.exited:
		n.child.exited <- err
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
}
