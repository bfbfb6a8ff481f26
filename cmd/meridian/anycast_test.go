package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/internal/bgptest"
)

// TestRunAnycastAgainstBird runs a real meridian process with an eBGP
// session (TCP MD5 signed) to bird2: the prefix appears in
// `birdc show route` once the node is ready, disappears on
// `meridian ctl drain` and comes back on undrain; on SIGTERM it disappears
// while the node still answers DNS during node.drain. Both times, from
// the command to the route gone at bird, are logged.
func TestRunAnycastAgainstBird(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bird and a meridian process")
	}
	prefix := netip.MustParsePrefix("198.51.100.53/32")
	bird := bgptest.StartBird(t, 65000, 65001, "e2e-md5-key")
	n := startAnycastNode(t, "anycast-e2e", bird.Port, "", prefix)

	bgptest.WaitFor(t, 30*time.Second, "prefix at bird", func() bool { return bird.Has(t, prefix) })
	if code := n.ready(); code != 200 {
		t.Fatalf("/health/ready while announced: got %d, want 200", code)
	}
	t.Logf("birdc show route:\n%s", bird.Routes(t, prefix))
	if out := n.ctl("status"); !strings.Contains(out, "AS65001, router id 127.0.0.2, announced") ||
		!strings.Contains(out, "127.0.0.1:") || !strings.Contains(out, "established") {
		t.Errorf("ctl status lacks the bgp session or the announcement:\n%s", out)
	}
	n.withdrawCycle(bird, "bird", prefix)
}
