package anycast

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/internal/bgptest"
)

// TestSpeakerAgainstBird runs an eBGP session with a TCP MD5 password to
// bird2, an independent implementation: `birdc show route` sees the IPv4
// and IPv6 prefixes appear on Announce and disappear on Withdraw.
func TestSpeakerAgainstBird(t *testing.T) {
	bird := bgptest.StartBird(t, 65000, 65001, "md5-s3cret")
	cfg := bgpConfig(65001, 65000, bird.Port)
	cfg.Peers[0].Password = "md5-s3cret"
	sp := startSpeaker(t, cfg)
	bgptest.WaitFor(t, 30*time.Second, "session with bird established", func() bool {
		return bird.Established(t) && sp.Peers()[0].Up
	})
	if err := sp.Announce(); err != nil {
		t.Fatal(err)
	}
	bgptest.WaitFor(t, 5*time.Second, "prefixes in bird's table", func() bool {
		return bird.Has(t, v4Prefix) && bird.Has(t, v6Prefix)
	})
	out := bird.Routes(t, netip.Prefix{})
	if !strings.Contains(out, "198.51.100.53/32") || !strings.Contains(out, "127.0.0.2") {
		t.Errorf("bird's table lacks the prefix via 127.0.0.2:\n%s", out)
	}
	t.Logf("birdc show route:\n%s", out)
	if err := sp.Withdraw(); err != nil {
		t.Fatal(err)
	}
	bgptest.WaitFor(t, 5*time.Second, "prefixes gone from bird's table", func() bool {
		return !bird.Has(t, v4Prefix) && !bird.Has(t, v6Prefix)
	})
	if !bird.Established(t) {
		t.Error("withdrawing closed the session; it must stay up")
	}
}
