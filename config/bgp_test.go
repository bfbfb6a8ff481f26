package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBGPDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.yaml")
	text := `node:
  addresses: ["2001:db8::53", 203.0.113.53]
bgp:
  asn: 65001
  peers: [{address: 192.0.2.1, asn: 65000}]
  next_hop: ["2001:db8::1"]
` + regionR1 + zonesAndService
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b := c.BGP
	if got, want := b.RouterID, netip.MustParseAddr("203.0.113.53"); got != want {
		t.Errorf("router_id: got %s, want %s", got, want)
	}
	if b.ListenPort != -1 {
		t.Errorf("listen_port: got %d, want -1", b.ListenPort)
	}
	want := []netip.Prefix{netip.MustParsePrefix("2001:db8::53/128"), netip.MustParsePrefix("203.0.113.53/32")}
	if len(b.Announce) != 2 || b.Announce[0] != want[0] || b.Announce[1] != want[1] {
		t.Errorf("announce: got %v, want %v", b.Announce, want)
	}
	p := b.Peers[0]
	if p.Port != 179 || p.HoldTime.D() != 9*time.Second {
		t.Errorf("peer: got port %d hold_time %s, want 179 and 9s", p.Port, p.HoldTime)
	}
	s := b.SelfCheck
	if s.Interval.D() != time.Second || s.Timeout.D() != 500*time.Millisecond || s.Fall != 3 || s.Rise != 2 || s.HoldDown.D() != 10*time.Second {
		t.Errorf("self_check: got %+v", s)
	}
}

func TestBGPPasswordFromFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bgp.key"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BGP_PW", "from-env")
	path := filepath.Join(dir, "f.yaml")
	text := `node:
  addresses: [203.0.113.53]
bgp:
  asn: 65001
  peers:
    - {address: 192.0.2.1, asn: 65000, password_file: bgp.key}
    - {address: 192.0.2.2, asn: 65001, password_env: BGP_PW}
` + regionR1 + zonesAndService
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BGP.Peers[0].Password; got != "s3cret" {
		t.Errorf("password_file: got %q, want s3cret", got)
	}
	if got := c.BGP.Peers[1].Password; got != "from-env" {
		t.Errorf("password_env: got %q, want from-env", got)
	}
}

func TestBGPErrors(t *testing.T) {
	runErrCases(t, []errCase{{
		name: "session settings",
		yaml: `node:
  addresses: ["2001:db8::53"]
bgp:
  asn: 23456
  listen_port: 0
  peers:
    - {address: 192.0.2.1, port: 70000, asn: 0, local_address: "2001:db8::1", hold_time: 2s}
    - {address: 192.0.2.1, asn: 4294967296, password_env: A, password_file: b, hold_time: 0s}
    - {address: "::", asn: 65000}
    - {address: 192.0.2.3, asn: 23456, hold_time: 1500ms, multihop: 2}
` + regionR1 + zonesAndService,
		want: []string{
			`3: bgp.router_id is required when node.addresses holds no IPv4 address`,
			`3: bgp.announce holds IPv6 prefixes, but no peer is IPv6 and bgp.next_hop names no IPv6 address to send them over an IPv4 session`,
			`4: bgp.asn 23456 is AS_TRANS (RFC 6793), which no speaker may use`,
			`5: bgp.listen_port 0 is outside 1..65535; use -1 to only connect out`,
			`7: bgp peer 192.0.2.1: port 70000 is outside 1..65535`,
			`7: bgp peer 192.0.2.1: asn is required`,
			`7: bgp peer 192.0.2.1: local_address 2001:db8::1 is not of the peer's address family`,
			`7: bgp peer 192.0.2.1: hold_time must be whole seconds from 3s to 65535s, got 2s`,
			`8: bgp.peers: duplicate peer 192.0.2.1 (first at line 7)`,
			`8: bgp peer 192.0.2.1: asn 4294967296 is outside 1..4294967295`,
			`8: bgp peer 192.0.2.1: set at most one of password_env and password_file`,
			`8: bgp peer 192.0.2.1: hold_time must be whole seconds from 3s to 65535s, got 0s`,
			`9: bgp.peers: address: :: is the unspecified address`,
			`10: bgp peer 192.0.2.3: asn 23456 is AS_TRANS (RFC 6793), which no speaker may use`,
			`10: bgp peer 192.0.2.3: hold_time must be whole seconds from 3s to 65535s, got 1.5s`,
			`10: bgp peer 192.0.2.3: multihop applies to eBGP sessions only; this one is iBGP`,
		},
	}, {
		name: "prefixes communities self check",
		yaml: `bgp:
  asn: 65001
  router_id: "2001:db8::1"
  peers: []
  announce: [203.0.113.5/24, 198.51.100.0/24, 198.51.100.0/24, "::ffff:192.0.2.0/120"]
  communities: ["65000:100", "65536:1", "1:2:3", "1:2:3:4", no-export, bogus]
  next_hop: [192.0.2.9, 192.0.2.10, "ff02::1"]
  self_check: {interval: 1s, timeout: 2s, fall: 0, rise: 101, hold_down: -1s}
` + regionR1 + zonesAndService,
		want: []string{
			`1: bgp.peers: at least one peer is required`,
			`3: bgp.router_id 2001:db8::1 must be a non-zero IPv4 address`,
			`5: bgp.announce: 203.0.113.5/24 has bits set beyond its length; did you mean 203.0.113.0/24?`,
			`5: bgp.announce: duplicate prefix 198.51.100.0/24 (first at line 5)`,
			`5: bgp.announce: ::ffff:192.0.2.0/120 is an IPv4-mapped prefix; write it as IPv4`,
			`6: bgp.communities: community "65536:1": both halves of ASN:VALUE must be numbers from 0 to 65535`,
			`6: bgp.communities: community "1:2:3:4": use ASN:VALUE, a large community A:B:C, or no-export, no-advertise, no-export-subconfed, blackhole, graceful-shutdown`,
			`6: bgp.communities: community "bogus": use ASN:VALUE, a large community A:B:C, or no-export, no-advertise, no-export-subconfed, blackhole, graceful-shutdown`,
			`7: bgp.next_hop: 192.0.2.9 and 192.0.2.10 are both IPv4; name at most one address of each family`,
			`7: bgp.next_hop: ff02::1 is a multicast address`,
			`8: bgp.self_check.timeout 2s must not exceed interval 1s`,
			`8: bgp.self_check.fall 0 is outside 1..100`,
			`8: bgp.self_check.rise 101 is outside 1..100`,
			`8: bgp.self_check.hold_down must not be negative, got -1s`,
		},
	}, {
		name: "no prefixes and missing secrets",
		yaml: `bgp:
  asn: 65001
  router_id: 192.0.2.53
  peers:
    - {address: 192.0.2.1, asn: 65000, password_env: NOT_SET_ANYWHERE}
    - {address: 192.0.2.2, asn: 65000, password_file: missing.key}
` + regionR1 + zonesAndService,
		want: []string{
			`1: bgp.announce is empty: name the prefixes to announce, or set node.addresses`,
			`5: bgp peer 192.0.2.1: environment variable NOT_SET_ANYWHERE is not set`,
			`6: bgp peer 192.0.2.2: reading password file: stat missing.key: no such file or directory`,
		},
	}})
}

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Community
	}{
		{"65000:100", Community{Standard: 65000<<16 | 100}},
		{"0:0", Community{}},
		{"NO-EXPORT", Community{Standard: 0xFFFFFF01}},
		{"4200000000:1:2", Community{Large: true, Parts: [3]uint32{4200000000, 1, 2}}},
	} {
		got, err := ParseCommunity(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCommunity(%q): got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", ":", "1:", "-1:2", "1:2:4294967296", "a:b"} {
		if _, err := ParseCommunity(bad); err == nil {
			t.Errorf("ParseCommunity(%q) succeeded, want an error", bad)
		}
	}
}
