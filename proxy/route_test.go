package proxy

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"testing"
)

func TestLookupHost(t *testing.T) {
	api, www := &service{name: "api"}, &service{name: "www"}
	tab := &table{hosts: map[string]*service{"api.example.com": api, "www.example.com": www, "::1": www, "127.0.0.1": api}}
	tests := []struct {
		host string
		want *service
	}{
		{"api.example.com", api},
		{"API.Example.Com", api},
		{"api.example.com:8443", api},
		{"api.example.com.", api},
		{"api.example.com.:80", api},
		{"www.example.com", www},
		{"[::1]:8080", www},
		{"[::1]", www},
		{"127.0.0.1:8080", api},
		{"example.com", nil},
		{"", nil},
		{"[::1", nil},
		{"api.example.com:80:80", nil},
	}
	for _, tc := range tests {
		if got := tab.lookup(tc.host); got != tc.want {
			t.Errorf("lookup(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestRouteSNI(t *testing.T) {
	api, www := &service{name: "api"}, &service{name: "www"}
	tab := &table{hosts: map[string]*service{"api.example.com": api, "www.example.com": www}}
	tests := []struct {
		name, host, sni string
		want            *service
	}{
		{"same service", "api.example.com", "api.example.com", api},
		{"no SNI", "api.example.com", "", api},
		{"SNI of no service", "api.example.com", "other.example.net", api},
		{"SNI of another service", "api.example.com", "www.example.com", nil},
		{"SNI case ignored", "api.example.com", "API.EXAMPLE.COM", api},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Host: tc.host, TLS: &tls.ConnectionState{ServerName: tc.sni}}
			if got := tab.route(r); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClientFromXFF(t *testing.T) {
	svc := &service{trusted: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}}
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"no header", nil, "10.0.0.1"},
		{"one client", []string{"203.0.113.7"}, "203.0.113.7"},
		{"last untrusted wins", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops skipped", []string{"203.0.113.7, 10.1.1.1, 10.2.2.2"}, "203.0.113.7"},
		{"spoofed left part ignored", []string{"1.1.1.1, 203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"several header lines", []string{"198.51.100.9", "203.0.113.7, 10.1.1.1"}, "203.0.113.7"},
		{"all trusted: farthest", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"with port", []string{"203.0.113.7:4711"}, "203.0.113.7"},
		{"ipv6 with port", []string{"[2001:db8::7]:4711"}, "2001:db8::7"},
		{"ipv6 trusted hop", []string{"2001:db8::7, 2001:db8:ffff::1"}, "2001:db8::7"},
		{"mapped ipv4", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"garbage stops at last good hop", []string{"203.0.113.7, unknown, 10.1.1.1"}, "10.1.1.1"},
		{"garbage right away: the peer", []string{"bogus"}, "10.0.0.1"},
		{"empty items skipped", []string{" , 203.0.113.7 ,, "}, "203.0.113.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := svc.clientFromXFF(peer, tc.values); got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPeerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1234":         "192.0.2.1",
		"[2001:db8::1]:443":      "2001:db8::1",
		"[::ffff:192.0.2.1]:443": "192.0.2.1",
		"[fe80::1%eth0]:80":      "fe80::1",
		"@":                      "invalid IP",
		"":                       "invalid IP",
	} {
		if got := peerAddr(in).String(); got != want {
			t.Errorf("peerAddr(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestForwardedElement(t *testing.T) {
	tests := []struct {
		peer string
		host string
		tls  bool
		want string
	}{
		{"192.0.2.1", "api.example.com", false, "for=192.0.2.1;host=api.example.com;proto=http"},
		{"2001:db8::1", "api.example.com", true, `for="[2001:db8::1]";host=api.example.com;proto=https`},
		{"192.0.2.1", "api.example.com:8080", false, `for=192.0.2.1;host="api.example.com:8080";proto=http`},
		{"192.0.2.1", `we"ird`, false, `for=192.0.2.1;host="we\"ird";proto=http`},
		{"", "", false, "for=unknown;proto=http"},
	}
	for _, tc := range tests {
		var peer netip.Addr
		if tc.peer != "" {
			peer = netip.MustParseAddr(tc.peer)
		}
		if got := forwardedElement(peer, tc.host, tc.tls); got != tc.want {
			t.Errorf("forwardedElement(%s, %q, %v) = %s, want %s", tc.peer, tc.host, tc.tls, got, tc.want)
		}
	}
}
