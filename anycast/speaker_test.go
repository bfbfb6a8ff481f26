package anycast

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/bgptest"
)

var (
	v4Prefix = netip.MustParsePrefix("198.51.100.53/32")
	v6Prefix = netip.MustParsePrefix("2001:db8::53/128")
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// bgpConfig is a bgp section with one session to a collector on port.
func bgpConfig(asn, peerASN int64, port int) *config.BGP {
	return &config.BGP{
		ASN: asn, RouterID: bgptest.SpeakerAddr, ListenPort: -1,
		Peers: []config.BGPPeer{{
			Address: bgptest.CollectorAddr, Port: port, ASN: peerASN,
			LocalAddress: bgptest.SpeakerAddr, HoldTime: config.Duration(9 * time.Second),
		}},
		Announce:    []netip.Prefix{v4Prefix, v6Prefix},
		Communities: []string{"65000:100", "65000:7:8"},
		NextHop:     []netip.Addr{netip.MustParseAddr("2001:db8::1")},
		SelfCheck: config.SelfCheck{
			Interval: config.Duration(100 * time.Millisecond), Timeout: config.Duration(100 * time.Millisecond),
			Fall: 3, Rise: 2, HoldDown: config.Duration(500 * time.Millisecond),
		},
	}
}

func startSpeaker(t *testing.T, cfg *config.BGP) *Speaker {
	t.Helper()
	sp, err := NewSpeaker(cfg, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sp.Stop)
	return sp
}

// TestSpeakerAnnouncesAndWithdraws runs eBGP and iBGP sessions to a
// GoBGP collector: both families arrive with the session's local address
// (IPv4) or the configured next hop (IPv6) and the communities, and leave
// on Withdraw.
func TestSpeakerAnnouncesAndWithdraws(t *testing.T) {
	for _, tc := range []struct {
		name     string
		peerASN  int64
		wantType string
	}{{"ebgp", 65000, "ebgp"}, {"ibgp", 65001, "ibgp"}} {
		t.Run(tc.name, func(t *testing.T) {
			col := bgptest.StartCollector(t, uint32(tc.peerASN), 65001)
			sp := startSpeaker(t, bgpConfig(65001, tc.peerASN, col.Port))
			bgptest.WaitFor(t, 20*time.Second, "session established", func() bool {
				return col.Established(t) && sp.Peers()[0].Up
			})
			if p := sp.Peers()[0]; p.State != "established" || p.Type != tc.wantType || p.Uptime == "" {
				t.Errorf("peer status: got %+v, want established %s with an uptime", p, tc.wantType)
			}
			if col.Has(t, v4Prefix) {
				t.Fatal("collector has the prefix before Announce")
			}
			if err := sp.Announce(); err != nil {
				t.Fatal(err)
			}
			bgptest.WaitFor(t, 5*time.Second, "both prefixes at the collector", func() bool {
				return col.Has(t, v4Prefix) && col.Has(t, v6Prefix)
			})
			checkAttrs(t, col.Path(t, v4Prefix), "127.0.0.2")
			checkAttrs(t, col.Path(t, v6Prefix), "2001:db8::1")
			if err := sp.Withdraw(); err != nil {
				t.Fatal(err)
			}
			bgptest.WaitFor(t, 5*time.Second, "prefixes gone from the collector", func() bool {
				return !col.Has(t, v4Prefix) && !col.Has(t, v6Prefix)
			})
			if !col.Established(t) {
				t.Error("withdrawing closed the session; it must stay up")
			}
		})
	}
}

// checkAttrs checks a collected path's next hop and communities.
func checkAttrs(t *testing.T, p *apiutil.Path, wantNextHop string) {
	t.Helper()
	if p == nil {
		t.Fatal("no path")
	}
	var nh netip.Addr
	var comms []uint32
	var large []*bgp.LargeCommunity
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			nh = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			nh = a.Nexthop
		case *bgp.PathAttributeCommunities:
			comms = a.Value
		case *bgp.PathAttributeLargeCommunities:
			large = a.Values
		}
	}
	if nh.String() != wantNextHop {
		t.Errorf("%s: next hop %s, want %s", p.Nlri, nh, wantNextHop)
	}
	if len(comms) != 1 || comms[0] != 65000<<16|100 {
		t.Errorf("%s: communities %v, want [65000:100]", p.Nlri, comms)
	}
	if len(large) != 1 || large[0].ASN != 65000 || large[0].LocalData1 != 7 || large[0].LocalData2 != 8 {
		t.Errorf("%s: large communities %v, want [65000:7:8]", p.Nlri, large)
	}
}
