package anycast

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSelfCheck(t *testing.T) {
	var failing atomic.Bool
	dnsAddr := soaServer(t, &failing)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != selfCheckHost {
			t.Errorf("probe Host: got %q, want %q", r.Host, selfCheckHost)
		}
		http.Error(w, "unknown host", http.StatusMisdirectedRequest) // any response passes
	}))
	defer web.Close()
	tlsWeb := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsWeb.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr()
	_ = ln.Close()

	for _, tc := range []struct {
		name    string
		t       Targets
		failing bool
		want    string // "" = pass; else a substring of the error
	}{
		{"all pass", Targets{DNS: []net.Addr{dnsAddr}, Zones: []string{"example.test"},
			HTTP: []net.Addr{web.Listener.Addr()}, HTTPS: []net.Addr{tlsWeb.Listener.Addr()}}, false, ""},
		{"dns refuses", Targets{DNS: []net.Addr{dnsAddr}, Zones: []string{"example.test"}}, true, "rcode REFUSED"},
		{"http closed", Targets{HTTP: []net.Addr{closed}}, false, "connection refused"},
		{"https closed", Targets{HTTPS: []net.Addr{closed}}, false, "connection refused"},
		{"dns silent", Targets{DNS: []net.Addr{closed}, Zones: []string{"example.test"}}, false, "dns 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failing.Store(tc.failing)
			err := SelfCheck(context.Background(), tc.t, 2*time.Second) // generous: -race on a loaded machine
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want a pass", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:53":       "127.0.0.1:53",
		"[::]:8080":        "[::1]:8080",
		"192.0.2.1:53":     "192.0.2.1:53",
		"[2001:db8::1]:53": "[2001:db8::1]:53",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialable(a); got != want {
			t.Errorf("dialable(%s): got %s, want %s", in, got, want)
		}
	}
}
