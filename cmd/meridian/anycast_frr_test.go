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

	"github.com/meridian-edge/meridian/internal/bgptest"
)

// TestRunAnycastAgainstFRR runs a real meridian process with an eBGP
// session (TCP MD5 signed) to FRR's bgpd with the README's router
// configuration: the IPv4 and IPv6 service prefixes are accepted into
// bgpd's table once the node is ready, leave it on `meridian ctl drain`,
// come back on undrain and leave it on SIGTERM. An announced prefix that
// the router's prefix-lists do not name is denied.
func TestRunAnycastAgainstFRR(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bgpd and a meridian process")
	}
	v4, v6 := netip.MustParsePrefix("198.51.100.53/32"), netip.MustParsePrefix("2001:db8::53/128")
	stray := netip.MustParsePrefix("198.51.100.99/32")
	frr := bgptest.StartFRR(t, 65000, 65001, "e2e-md5-key", v4, v6)
	dir := t.TempDir()
	for name, secret := range map[string]string{"bgp.key": "e2e-md5-key", "ops.token": "ops-secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dnsPort, adminPort := freePort(t), freePort(t)
	path := filepath.Join(dir, "meridian.yaml")
	cfg := fmt.Sprintf(`
node: {name: anycast-frr-e2e, drain: 2s, shutdown_timeout: 2s}
listen: {dns: ["127.0.0.1:%d"], admin: "127.0.0.1:%d"}
admin: {tokens: [{name: ops, role: write, secret_file: ops.token}]}
state: {path: %s}
bgp:
  asn: 65001
  router_id: 127.0.0.2
  peers:
    - {address: 127.0.0.1, port: %d, asn: 65000, local_address: 127.0.0.2, password_file: bgp.key, multihop: 2}
  announce: [%s, "%s", %s]
  next_hop: ["2001:db8::1"]
  communities: ["65000:100"]
  self_check: {interval: 200ms, timeout: 200ms, fall: 3, rise: 2, hold_down: 1s}
regions:
  - name: a
    endpoints: [{address: 192.0.2.1}]
    health: {type: none}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
services:
  - {name: api, hostnames: [api.example.test], policy: failover, regions: [a]}
`, dnsPort, adminPort, filepath.Join(dir, "state.json"), frr.Port, v4, v6, stray)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	child := startChild(t, "run", "--config", path)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	ready := func() int {
		resp, err := http.Get(admin + "/health/ready")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ctl := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		all := append([]string{"ctl", "--admin", admin, "--token", "ops-secret"}, args...)
		if code := run(all, &out, &errb); code != 0 {
			t.Fatalf("meridian %s: exit %d: %s%s", strings.Join(all, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	both := func() bool { return frr.Has(t, v4) && frr.Has(t, v6) }
	neither := func() bool { return !frr.Has(t, v4) && !frr.Has(t, v6) }

	bgptest.WaitFor(t, 30*time.Second, "both prefixes at bgpd", both)
	if !frr.Established(t) {
		t.Fatal("bgpd's session is not established")
	}
	if code := ready(); code != 200 {
		t.Fatalf("/health/ready while announced: got %d, want 200", code)
	}
	for p, nh := range map[netip.Prefix]string{v4: "127.0.0.2", v6: "2001:db8::1"} {
		paths := frr.Paths(t, p)
		if len(paths) != 1 || !paths[0].Valid || len(paths[0].Nexthops) != 1 || paths[0].Nexthops[0].IP != nh ||
			paths[0].Community == nil || paths[0].Community.String != "65000:100" {
			t.Errorf("%s: want one valid path via %s with community 65000:100, got %+v", p, nh, paths)
		}
	}
	bgptest.WaitFor(t, 10*time.Second, "bgpd denying the prefix its prefix-list does not name", func() bool { return frr.Denied(t, stray) })
	if frr.Has(t, stray) {
		t.Errorf("bgpd installed %s, which its prefix-list does not permit", stray)
	}

	start := time.Now()
	if out := ctl("drain", "--reason", "e2e"); !strings.Contains(out, "drained: readiness 503, bgp prefixes withdrawn") {
		t.Errorf("ctl drain: got %q", out)
	}
	bgptest.WaitFor(t, 5*time.Second, "prefixes withdrawn at bgpd after drain", neither)
	drainTook := time.Since(start)
	if code := ready(); code != 503 {
		t.Errorf("/health/ready while drained: got %d, want 503", code)
	}
	if !frr.Established(t) {
		t.Error("draining closed the session; it must stay up")
	}

	ctl("undrain", "--reason", "e2e done")
	bgptest.WaitFor(t, 10*time.Second, "prefixes back at bgpd after undrain", both)

	if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	bgptest.WaitFor(t, 5*time.Second, "prefixes withdrawn at bgpd after SIGTERM", neither)
	termTook := time.Since(start)
	t.Logf("ctl drain → routes gone at bgpd: %v; SIGTERM → routes gone at bgpd: %v (polled every 5 ms, two vtysh calls a poll)", drainTook, termTook)
	select {
	case err := <-child.exited:
		child.exited <- err
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
}
