package main

import (
	"net/netip"
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
	n := startAnycastNode(t, "anycast-frr-e2e", frr.Port, `  next_hop: ["2001:db8::1"]
  communities: ["65000:100"]`, v4, v6, stray)

	bgptest.WaitFor(t, 30*time.Second, "both prefixes at bgpd", func() bool { return frr.Has(t, v4) && frr.Has(t, v6) })
	if !frr.Established(t) {
		t.Fatal("bgpd's session is not established")
	}
	if code := n.ready(); code != 200 {
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
	n.withdrawCycle(frr, "bgpd", v4, v6)
}
