package bgptest

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Loopback addresses of the two ends: the collector listens on CollectorAddr,
// the speaker under test connects from SpeakerAddr (127.0.0.0/8 is all
// loopback on Linux).
var (
	CollectorAddr = netip.MustParseAddr("127.0.0.1")
	SpeakerAddr   = netip.MustParseAddr("127.0.0.2")
)

// FreePort returns a TCP port that was free on addr a moment ago. It is
// picked below the kernel's ephemeral range (32768 and up), so that the
// machine's outgoing connections do not take it meanwhile.
func FreePort(t testing.TB, addr netip.Addr) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000) //nolint:gosec // G404: no secrecy needed
		ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(port)))
		if err != nil {
			continue
		}
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return port
	}
	t.Fatal("no free port found")
	return 0
}

// Collector is a GoBGP speaker that accepts one passive session and keeps
// what it learns.
type Collector struct {
	Port int
	ASN  uint32
	srv  *server.BgpServer
}

// StartCollector runs a collector of asn on CollectorAddr:port that
// accepts a session from SpeakerAddr of peerASN, with the IPv4 and IPv6
// unicast families. It stops when the test ends.
func StartCollector(t testing.TB, asn, peerASN uint32) *Collector {
	t.Helper()
	c := &Collector{Port: FreePort(t, CollectorAddr), ASN: asn}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c.srv = server.NewBgpServer(server.LoggerOption(log, nil))
	go c.srv.Serve()
	t.Cleanup(c.srv.Stop)
	ctx := context.Background()
	if err := c.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: CollectorAddr.String(), ListenPort: int32(c.Port), //nolint:gosec // G115: a port from the kernel
		ListenAddresses: []string{CollectorAddr.String()},
	}}); err != nil {
		t.Fatal(err)
	}
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: SpeakerAddr.String(), PeerAsn: peerASN},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
		},
	}
	if err := c.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		t.Fatal(err)
	}
	return c
}

// Path returns the collector's path for prefix, or nil.
func (c *Collector) Path(t testing.TB, prefix netip.Prefix) *apiutil.Path {
	t.Helper()
	fam := bgp.RF_IPv4_UC
	if prefix.Addr().Is6() {
		fam = bgp.RF_IPv6_UC
	}
	var found *apiutil.Path
	err := c.srv.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_GLOBAL,
		Family:    fam,
		Prefixes:  []*apiutil.LookupPrefix{{Prefix: prefix.String(), LookupOption: apiutil.LOOKUP_EXACT}},
	}, func(_ bgp.NLRI, paths []*apiutil.Path) {
		for _, p := range paths {
			if !p.Withdrawal && found == nil {
				found = p
			}
		}
	})
	if err != nil {
		t.Fatalf("listing paths: %v", err)
	}
	return found
}

// Has reports whether the collector holds a route to prefix.
func (c *Collector) Has(t testing.TB, prefix netip.Prefix) bool {
	t.Helper()
	return c.Path(t, prefix) != nil
}

// Established reports whether the session to the speaker is up.
func (c *Collector) Established(t testing.TB) bool {
	t.Helper()
	up := false
	err := c.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: SpeakerAddr.String()}, func(p *api.Peer) {
		up = p.State != nil && p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	if err != nil {
		t.Fatalf("listing peers: %v", err)
	}
	return up
}

// WaitFor polls cond every 5 ms until it holds, failing the test after d;
// it returns how long it took.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// Addr formats addr:port.
func Addr(a netip.Addr, port int) string { return net.JoinHostPort(a.String(), strconv.Itoa(port)) }
