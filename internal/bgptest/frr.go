package bgptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FRR is FRRouting's bgpd run as a child process, without zebra, with its
// own config, pid file, log and vty socket in a temp dir, as the speaker's
// peer. Its configuration is the one the README gives for the router.
type FRR struct {
	Port int
	ASN  uint32
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when bgpd has exited
}

// FRRBgpdPath and FRRVtyshPath are where Debian's frr package installs
// bgpd and vtysh.
const (
	FRRBgpdPath  = "/usr/lib/frr/bgpd"
	FRRVtyshPath = "/usr/bin/vtysh"
)

// StartFRR runs bgpd on CollectorAddr:port as asn, with one passive
// session from SpeakerAddr of peerASN carrying IPv4 and IPv6 unicast. The
// session imports only the prefixes in accept (a prefix-list and a
// route-map per family, as the README configures a router) and exports
// nothing. With password set, the session is TCP MD5 signed. When FRR is
// not installed the test fails, unless MERIDIAN_SKIP_FRR is set (CI
// installs frr).
func StartFRR(t testing.TB, asn, peerASN uint32, password string, accept ...netip.Prefix) *FRR {
	t.Helper()
	for _, p := range []string{FRRBgpdPath, FRRVtyshPath} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("MERIDIAN_SKIP_FRR") != "" {
				t.Skipf("FRR is not installed (%v) and MERIDIAN_SKIP_FRR is set", err)
			}
			t.Fatalf("FRR is needed for this test (apt-get install frr; set MERIDIAN_SKIP_FRR=1 to skip): %v", err)
		}
	}
	// Another process on the machine may take the port between FreePort
	// and bgpd's bind, and bgpd then exits: try a few ports.
	for attempt := 1; ; attempt++ {
		f, inUse := startFRR(t, asn, peerASN, password, accept)
		if !inUse {
			return f
		}
		if attempt == 5 {
			log, _ := os.ReadFile(f.log)
			t.Fatalf("bgpd could not listen on a port in 5 attempts:\n%s", log)
		}
	}
}

// FRRConfig is the bgpd configuration StartFRR runs: the README's FRR
// configuration, with what a single loopback session forces changed.
func FRRConfig(asn, peerASN uint32, password string, accept []netip.Prefix) string {
	var b strings.Builder
	// Both prefix-lists always have an entry, so that a family with no
	// accepted prefix denies everything instead of referring to a list
	// that does not exist.
	var v4, v6 []string
	for _, p := range accept {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	writeList := func(kw, name string, prefixes []string) {
		seq := 5
		for _, p := range prefixes {
			fmt.Fprintf(&b, "%s prefix-list %s seq %d permit %s\n", kw, name, seq, p)
			seq += 5
		}
		fmt.Fprintf(&b, "%s prefix-list %s seq %d deny any\n", kw, name, seq)
	}
	writeList("ip", "MERIDIAN-V4", v4)
	writeList("ipv6", "MERIDIAN-V6", v6)
	peer := SpeakerAddr.String()
	pw := ""
	if password != "" {
		pw = fmt.Sprintf(" neighbor %s password %s\n", peer, password)
	}
	fmt.Fprintf(&b, `! Every update is logged with the route-map's verdict, so a test can
! see a prefix arrive and be denied.
debug bgp updates in
route-map MERIDIAN-IN-V4 permit 10
 match ip address prefix-list MERIDIAN-V4
route-map MERIDIAN-IN-V6 permit 10
 match ipv6 address prefix-list MERIDIAN-V6
route-map NOTHING deny 10
!
! ebgp-requires-policy stays on (FRR's default since 7.4).
router bgp %[1]d
 bgp router-id %[2]s
 no bgp default ipv4-unicast
 ! Only for loopback: the speaker's next hop is its session address,
 ! 127.0.0.2, which bgpd calls martian and resets the session for.
 bgp allow-martian-nexthop
 neighbor %[3]s remote-as %[4]d
%[5]s neighbor %[3]s timers 3 9
 ! Only for loopback: bgpd runs without zebra, so it knows no connected
 ! interface and holds an eBGP peer on 127.0.0.2 for not directly
 ! connected (the session would stay in Active); a router with the node
 ! on its LAN needs neither line.
 neighbor %[3]s ebgp-multihop 2
 ! Only for the test: bgpd listens on a port of the test's own and the
 ! speaker connects to it, so bgpd does not dial out to port 179.
 neighbor %[3]s passive
 address-family ipv4 unicast
  neighbor %[3]s activate
  neighbor %[3]s route-map MERIDIAN-IN-V4 in
  neighbor %[3]s route-map NOTHING out
  maximum-paths 8
 exit-address-family
 ! The README runs a second session over IPv6 for the IPv6 prefix; on
 ! loopback the speaker has one session, over IPv4, and carries the IPv6
 ! prefix on it (its bgp.next_hop names an IPv6 address), so the IPv6
 ! family is activated on the same neighbor.
 address-family ipv6 unicast
  neighbor %[3]s activate
  neighbor %[3]s route-map MERIDIAN-IN-V6 in
  neighbor %[3]s route-map NOTHING out
  maximum-paths 8
 exit-address-family
`, asn, CollectorAddr, peer, peerASN, pw)
	return b.String()
}

// startFRR starts bgpd once; inUse reports that it exited because its
// port was taken (it is then stopped).
func startFRR(t testing.TB, asn, peerASN uint32, password string, accept []netip.Prefix) (f *FRR, inUse bool) {
	t.Helper()
	dir := t.TempDir()
	f = &FRR{Port: FreePort(t, CollectorAddr), ASN: asn, dir: dir, log: filepath.Join(dir, "bgpd.log"), done: make(chan struct{})}
	confPath := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(confPath, []byte(FRRConfig(asn, peerASN, password, accept)), 0o600); err != nil {
		t.Fatal(err)
	}
	// -Z: no zebra (-n: nothing to install in the kernel either); -S: no
	// capability checks and no change of user, so it runs as whoever runs
	// the test (root in CI) and writes only to dir; -P 0: no vty on TCP,
	// only the unix socket in dir that vtysh uses.
	f.cmd = exec.Command(FRRBgpdPath, //nolint:gosec // G204: test helper; paths in t.TempDir()
		"-f", confPath, "-i", filepath.Join(dir, "bgpd.pid"), "--vty_socket", dir,
		"-z", filepath.Join(dir, "zserv.api"), "-Z", "-n", "-S",
		"-l", CollectorAddr.String(), "-p", strconv.Itoa(f.Port), "-P", "0",
		"--log", "file:"+f.log, "--log-level", "debug")
	f.cmd.Stdout, f.cmd.Stderr = os.Stderr, os.Stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("starting bgpd: %v", err)
	}
	go func() { _ = f.cmd.Wait(); close(f.done) }()
	cleanup := func() {
		f.stop()
		if t.Failed() {
			if data, err := os.ReadFile(f.log); err == nil {
				t.Logf("bgpd log:\n%s", data)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-f.done:
			log, _ := os.ReadFile(f.log)
			if strings.Contains(string(log), "Address already in use") {
				return f, true
			}
			t.Fatalf("bgpd exited at start (%v):\n%s", f.cmd.ProcessState, log)
		default:
		}
		if st, err := f.state(); err == nil && st != "" {
			t.Cleanup(cleanup)
			return f, false
		}
		if time.Now().After(deadline) {
			cleanup()
			t.Fatal("bgpd did not answer on its vty socket within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills bgpd and waits for it; safe twice.
func (f *FRR) stop() {
	select {
	case <-f.done:
	default:
		_ = f.cmd.Process.Kill()
		<-f.done
	}
}

// Vtysh runs one command on bgpd's vty socket and returns its output.
func (f *FRR) Vtysh(command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, FRRVtyshPath, "--vty_socket", f.dir, "-d", "bgpd", "-c", command) //nolint:gosec // G204: test helper; commands from the test
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh -c %q: %w: %s", command, err, out)
	}
	return string(out), nil
}

// JSON runs command (one ending in "json") and decodes its output into v.
func (f *FRR) JSON(t testing.TB, command string, v any) {
	t.Helper()
	out, err := f.Vtysh(command)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("vtysh -c %q: %v:\n%s", command, err, out)
	}
}

// FRRNeighbor is the part of `show bgp neighbors X json` the tests read.
type FRRNeighbor struct {
	BGPState               string `json:"bgpState"`
	HoldTimeMsecs          int    `json:"bgpTimerHoldTimeMsecs"`
	AuthenticationEnabled  int    `json:"authenticationEnabled"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	AddressFamily          map[string]struct {
		RouteMapIn       string `json:"routeMapForIncomingAdvertisements"`
		RouteMapOut      string `json:"routeMapForOutgoingAdvertisements"`
		AcceptedPrefixes int    `json:"acceptedPrefixCounter"`
		SentPrefixes     int    `json:"sentPrefixCounter"`
	} `json:"addressFamilyInfo"`
}

// state is the session's bgpState, "" while bgpd does not know the
// neighbor yet.
func (f *FRR) state() (string, error) {
	out, err := f.Vtysh("show bgp neighbors " + SpeakerAddr.String() + " json")
	if err != nil {
		return "", err
	}
	var m map[string]FRRNeighbor
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	return m[SpeakerAddr.String()].BGPState, nil
}

// Neighbor is bgpd's view of the session with the speaker.
func (f *FRR) Neighbor(t testing.TB) FRRNeighbor {
	t.Helper()
	var m map[string]FRRNeighbor
	f.JSON(t, "show bgp neighbors "+SpeakerAddr.String()+" json", &m)
	n, ok := m[SpeakerAddr.String()]
	if !ok {
		t.Fatalf("bgpd does not know neighbor %s: %v", SpeakerAddr, m)
	}
	return n
}

// Established reports whether bgpd's session to the speaker is up.
func (f *FRR) Established(t testing.TB) bool {
	t.Helper()
	return f.Neighbor(t).BGPState == "Established"
}

// FRRPath is one path of `show bgp <afi> unicast <prefix> json`.
type FRRPath struct {
	Valid bool `json:"valid"`
	Best  *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Nexthops []struct {
		IP  string `json:"ip"`
		Afi string `json:"afi"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
		Type   string `json:"type"`
	} `json:"peer"`
	ASPath struct {
		String string `json:"string"`
	} `json:"aspath"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
}

// Paths returns the paths bgpd holds in its table for exactly prefix
// (none when it holds no route to it).
func (f *FRR) Paths(t testing.TB, prefix netip.Prefix) []FRRPath {
	t.Helper()
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	var r struct {
		Prefix string    `json:"prefix"`
		Paths  []FRRPath `json:"paths"`
	}
	// A prefix bgpd has no route to gives {} (or a "warning" member):
	// no paths. Asking for a prefix with its length would return the
	// longest match otherwise, hence the check of "prefix".
	f.JSON(t, fmt.Sprintf("show bgp %s unicast %s json", afi, prefix), &r)
	if r.Prefix != prefix.String() {
		return nil
	}
	return r.Paths
}

// Has reports whether bgpd holds a route to exactly prefix from the
// speaker.
func (f *FRR) Has(t testing.TB, prefix netip.Prefix) bool {
	t.Helper()
	for _, p := range f.Paths(t, prefix) {
		if p.Peer.PeerID == SpeakerAddr.String() {
			return true
		}
	}
	return false
}

// Denied reports whether bgpd's log shows an update for prefix from the
// speaker that the inbound route-map denied ("... rcvd UPDATE about
// <prefix> ... -- DENIED due to: route-map").
func (f *FRR) Denied(t testing.TB, prefix netip.Prefix) bool {
	t.Helper()
	data, err := os.ReadFile(f.log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(line, SpeakerAddr.String()) && strings.Contains(line, " "+prefix.String()+" ") &&
			strings.Contains(line, "DENIED due to: route-map") {
			return true
		}
	}
	return false
}
