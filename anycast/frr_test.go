package anycast

import (
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/internal/bgptest"
)

// TestSpeakerAgainstFRR runs an eBGP session with a TCP MD5 password to
// FRR's bgpd with the README's router configuration (prefix-lists and
// route-maps in, a deny-all route-map out, ebgp-requires-policy on): the
// IPv4 and IPv6 service prefixes are accepted into bgpd's table on
// Announce and leave it on Withdraw, with the session up throughout. Two
// more prefixes the speaker announces, which the prefix-lists do not
// name, arrive at bgpd and are denied by its import route-map.
func TestSpeakerAgainstFRR(t *testing.T) {
	frr := bgptest.StartFRR(t, 65000, 65001, "md5-s3cret", v4Prefix, v6Prefix)
	cfg := bgpConfig(65001, 65000, frr.Port)
	cfg.Peers[0].Password = "md5-s3cret"
	other4, other6 := netip.MustParsePrefix("198.51.100.54/32"), netip.MustParsePrefix("2001:db8::54/128")
	cfg.Announce = append(cfg.Announce, other4, other6)
	sp := startSpeaker(t, cfg)
	bgptest.WaitFor(t, 30*time.Second, "session with FRR established", func() bool {
		return frr.Established(t) && sp.Peers()[0].Up
	})
	n := frr.Neighbor(t)
	if n.AuthenticationEnabled != 1 {
		t.Errorf("bgpd's session is not TCP MD5 signed (authenticationEnabled %d)", n.AuthenticationEnabled)
	}
	if n.HoldTimeMsecs != 9000 {
		t.Errorf("negotiated hold time %dms, want 9000ms", n.HoldTimeMsecs)
	}
	for afi, want := range map[string]string{"ipv4Unicast": "MERIDIAN-IN-V4", "ipv6Unicast": "MERIDIAN-IN-V6"} {
		af := n.AddressFamily[afi]
		if af.RouteMapIn != want || af.RouteMapOut != "NOTHING" {
			t.Errorf("%s: route-maps in %q out %q, want %q and NOTHING", afi, af.RouteMapIn, af.RouteMapOut, want)
		}
	}
	for _, p := range []netip.Prefix{v4Prefix, v6Prefix, other4, other6} {
		if frr.Has(t, p) {
			t.Fatalf("bgpd has %s before Announce", p)
		}
	}

	if err := sp.Announce(); err != nil {
		t.Fatal(err)
	}
	bgptest.WaitFor(t, 10*time.Second, "service prefixes in bgpd's table", func() bool {
		return frr.Has(t, v4Prefix) && frr.Has(t, v6Prefix)
	})
	for p, nh := range map[netip.Prefix]string{v4Prefix: "127.0.0.2", v6Prefix: "2001:db8::1"} {
		paths := frr.Paths(t, p)
		if len(paths) != 1 || !paths[0].Valid || paths[0].Best == nil || !paths[0].Best.Overall ||
			paths[0].Peer.Type != "external" || len(paths[0].Nexthops) != 1 || paths[0].Nexthops[0].IP != nh {
			t.Errorf("%s: want one valid best external path via %s, got %+v", p, nh, paths)
		}
	}
	// The other prefixes are announced with the service prefixes (in the
	// same or the next UPDATE); wait until bgpd logged its verdict on them.
	bgptest.WaitFor(t, 10*time.Second, "bgpd's import route-map denying the prefixes not in its prefix-lists", func() bool {
		return frr.Denied(t, other4) && frr.Denied(t, other6)
	})
	for _, p := range []netip.Prefix{other4, other6} {
		if frr.Has(t, p) {
			t.Errorf("bgpd installed %s, which its prefix-lists do not permit", p)
		}
	}
	n = frr.Neighbor(t)
	for _, afi := range []string{"ipv4Unicast", "ipv6Unicast"} {
		if af := n.AddressFamily[afi]; af.AcceptedPrefixes != 1 || af.SentPrefixes != 0 {
			t.Errorf("%s: bgpd accepted %d prefixes and sent %d, want 1 and 0", afi, af.AcceptedPrefixes, af.SentPrefixes)
		}
	}

	if err := sp.Withdraw(); err != nil {
		t.Fatal(err)
	}
	bgptest.WaitFor(t, 10*time.Second, "prefixes gone from bgpd's table", func() bool {
		return !frr.Has(t, v4Prefix) && !frr.Has(t, v6Prefix)
	})
	if !frr.Established(t) {
		t.Error("withdrawing closed the session; it must stay up")
	}
	if n := frr.Neighbor(t); n.ConnectionsEstablished != 1 {
		t.Errorf("bgpd established the session %d times, want once", n.ConnectionsEstablished)
	}
}
