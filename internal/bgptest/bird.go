package bgptest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bird is a bird2 daemon run as a child process, with its own config and
// control socket in a temp dir, as the speaker's peer.
type Bird struct {
	Port int
	ASN  uint32
	sock string
	cmd  *exec.Cmd
	log  string
}

// BirdPath is where Debian's bird2 package installs the daemon.
const BirdPath = "/usr/sbin/bird"

// StartBird runs bird on CollectorAddr:port as asn, with one passive
// session from SpeakerAddr of peerASN that imports every IPv4 and IPv6
// unicast route. With password set, the session is TCP MD5 signed. When
// bird is not installed the test fails, unless MERIDIAN_SKIP_BIRD is set
// (CI installs bird2).
func StartBird(t testing.TB, asn, peerASN uint32, password string) *Bird {
	t.Helper()
	// Another process on the machine may take the port between FreePort
	// and bird's bind: try a few ports.
	for attempt := 1; ; attempt++ {
		b := startBird(t, asn, peerASN, password)
		log, _ := os.ReadFile(b.log)
		if !strings.Contains(string(log), "Cannot open listening socket") {
			return b
		}
		b.stop()
		if attempt == 5 {
			t.Fatalf("bird could not listen on a port in 5 attempts:\n%s", log)
		}
	}
}

func startBird(t testing.TB, asn, peerASN uint32, password string) *Bird {
	t.Helper()
	if _, err := os.Stat(BirdPath); err != nil {
		if os.Getenv("MERIDIAN_SKIP_BIRD") != "" {
			t.Skipf("bird2 is not installed (%v) and MERIDIAN_SKIP_BIRD is set", err)
		}
		t.Fatalf("bird2 is needed for this test (apt-get install bird2; set MERIDIAN_SKIP_BIRD=1 to skip): %v", err)
	}
	dir := t.TempDir()
	b := &Bird{Port: FreePort(t, CollectorAddr), ASN: asn, sock: filepath.Join(dir, "bird.ctl"), log: filepath.Join(dir, "bird.log")}
	pw := ""
	if password != "" {
		pw = fmt.Sprintf("password %q;", password)
	}
	conf := fmt.Sprintf(`log %q all;
router id %s;
protocol device { scan time 10; }
# bird refuses a neighbor on lo as "directly connected", so the session
# is multihop; next hops on loopback do not resolve, and bird keeps the
# routes as unreachable, which is enough to see them come and go.
protocol bgp meridian {
	local %s port %d as %d;
	neighbor %s as %d;
	multihop;
	passive on;
	hold time 9;
	%s
	ipv4 { import all; export none; };
	ipv6 { import all; export none; };
}
`, b.log, CollectorAddr, CollectorAddr, b.Port, asn, SpeakerAddr, peerASN, pw)
	confPath := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(BirdPath, "-f", "-c", confPath, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid")) //nolint:gosec // G204: test helper; paths in t.TempDir()
	b.cmd.Stdout, b.cmd.Stderr = os.Stderr, os.Stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting bird: %v", err)
	}
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			if data, err := os.ReadFile(b.log); err == nil {
				t.Logf("bird log:\n%s", data)
			}
		}
	})
	WaitFor(t, 10*time.Second, "bird's session listening (or failed to)", func() bool {
		out, err := b.Birdc("show", "protocols", "meridian")
		return err == nil && (strings.Contains(out, "Passive") || strings.Contains(out, "Established") ||
			strings.Contains(out, "down"))
	})
	return b
}

// stop kills bird; safe twice.
func (b *Bird) stop() {
	if b.cmd.ProcessState == nil {
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
	}
}

// Birdc runs birdc on bird's control socket.
func (b *Bird) Birdc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.sock}, args...)...) //nolint:gosec // G204: test helper; arguments from the test
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Routes is `birdc show route` for prefix (all routes when invalid).
func (b *Bird) Routes(t testing.TB, prefix netip.Prefix) string {
	t.Helper()
	args := []string{"show", "route"}
	if prefix.IsValid() {
		args = append(args, "for", prefix.String())
	}
	out, err := b.Birdc(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Has reports whether bird holds a route to exactly prefix.
func (b *Bird) Has(t testing.TB, prefix netip.Prefix) bool {
	t.Helper()
	out, err := b.Birdc("show", "route", prefix.String())
	if strings.Contains(out, "Network not found") {
		return false // birdc exits 1 for it
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, prefix.String())
}

// Established reports whether bird's session to the speaker is up.
func (b *Bird) Established(t testing.TB) bool {
	t.Helper()
	out, err := b.Birdc("show", "protocols", "meridian")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, "Established")
}
