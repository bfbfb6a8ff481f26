package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

func TestNewRejectsBadRegions(t *testing.T) {
	t.Parallel()
	base := fastHealth("http")
	with := func(f func(*config.Health)) config.Health {
		h := base
		f(&h)
		return h
	}
	tests := []struct {
		name   string
		region config.Region
		want   string
	}{
		{"unknown type", regionOf("r", with(func(h *config.Health) { h.Type = "icmp" }), 1, "http://127.0.0.1"),
			`health: region "r": health type "icmp" is not one of http, https, tcp, none`},
		{"relative path", regionOf("r", with(func(h *config.Health) { h.Path = "health" }), 1, "http://127.0.0.1"),
			`health: region "r": health path "health" must start with /`},
		{"ftp url", regionOf("r", base, 1, "ftp://127.0.0.1"),
			`health: region "r" endpoint 0: url "ftp://127.0.0.1": scheme must be http or https`},
		{"url without host", regionOf("r", base, 1, "http://127.0.0.1", "http:///x"),
			`health: region "r" endpoint 1: url "http:///x" has no host`},
		{"unparsable url", regionOf("r", base, 1, "http://[::1"),
			`health: region "r" endpoint 0: parsing url: parse "http://[::1": missing ']' in host`},
		{"endpoint without identity", config.Region{Name: "r", Health: base, Endpoints: []config.Endpoint{{}}},
			`health: region "r" endpoint 0: endpoint has no url, address or hostname`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New([]config.Region{tt.region}, Options{})
			if err == nil {
				c.Stop()
				t.Fatalf("New succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q\nwant    %q", err, tt.want)
			}
		})
	}
}

func TestNewReportsEveryBadRegion(t *testing.T) {
	t.Parallel()
	_, err := New([]config.Region{
		regionOf("a", fastHealth("http"), 1, "ftp://x"),
		regionOf("b", fastHealth("ping"), 1, "http://x"),
	}, Options{})
	if err == nil {
		t.Fatal("New succeeded, want errors")
	}
	for _, want := range []string{`region "a" endpoint 0`, `region "b": health type "ping"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		endpoint config.Endpoint
		health   config.Health
		wantName string
		wantURL  string // probe URL (http) or address (tcp)
		wantSNI  string
	}{
		{"path joined to base", config.Endpoint{URL: "http://10.0.0.1:8080/app/"},
			config.Health{Path: "/health/ready"}, "http://10.0.0.1:8080/app/", "http://10.0.0.1:8080/app/health/ready", ""},
		{"defaults filled", config.Endpoint{URL: "http://10.0.0.1"},
			config.Health{}, "http://10.0.0.1", "http://10.0.0.1/health/ready", ""},
		{"query kept", config.Endpoint{URL: "http://10.0.0.1"},
			config.Health{Path: "/h?i=7"}, "http://10.0.0.1", "http://10.0.0.1/h?i=7", ""},
		{"https forces scheme", config.Endpoint{URL: "http://10.0.0.1:8443"},
			config.Health{Type: "https", Path: "/h"}, "http://10.0.0.1:8443", "https://10.0.0.1:8443/h", ""},
		{"health.host is sni on https", config.Endpoint{URL: "https://10.0.0.1"},
			config.Health{Path: "/h", Host: "api.example.com:443"}, "https://10.0.0.1", "https://10.0.0.1/h", "api.example.com"},
		{"no sni on plain http", config.Endpoint{URL: "http://10.0.0.1"},
			config.Health{Path: "/h", Host: "api.example.com"}, "http://10.0.0.1", "http://10.0.0.1/h", ""},
		{"address without url", config.Endpoint{Address: netip.MustParseAddr("2001:db8::1")},
			config.Health{Path: "/h"}, "2001:db8::1", "http://[2001:db8::1]/h", ""},
		{"hostname without url", config.Endpoint{Hostname: "lb.example.net"},
			config.Health{Path: "/h"}, "lb.example.net", "http://lb.example.net/h", ""},
		{"tcp default http port", config.Endpoint{URL: "http://10.0.0.1"},
			config.Health{Type: "tcp"}, "http://10.0.0.1", "10.0.0.1:80", ""},
		{"tcp default https port", config.Endpoint{URL: "https://lb.example.net"},
			config.Health{Type: "tcp"}, "https://lb.example.net", "lb.example.net:443", ""},
		{"tcp explicit port", config.Endpoint{URL: "http://[2001:db8::1]:81"},
			config.Health{Type: "tcp"}, "http://[2001:db8::1]:81", "[2001:db8::1]:81", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := withDefaults(tt.health)
			tg, err := newTarget("r", &tt.endpoint, h)
			if err != nil {
				t.Fatalf("newTarget: %v", err)
			}
			got := tg.url
			if tg.kind == kindTCP {
				got = tg.addr
			}
			if tg.name != tt.wantName || got != tt.wantURL || tg.serverName != tt.wantSNI {
				t.Errorf("target = name %q, url %q, sni %q; want %q, %q, %q",
					tg.name, got, tg.serverName, tt.wantName, tt.wantURL, tt.wantSNI)
			}
		})
	}
}

func TestTargetDefaults(t *testing.T) {
	t.Parallel()
	tg, err := newTarget("r", &config.Endpoint{URL: "http://10.0.0.1"}, withDefaults(config.Health{}))
	if err != nil {
		t.Fatal(err)
	}
	if tg.kind != kindHTTP || tg.interval != 2*time.Second || tg.timeout != time.Second || tg.rise != 2 || tg.fall != 2 {
		t.Errorf("defaults = kind %d interval %v timeout %v rise %d fall %d; want http 2s 1s 2 2",
			tg.kind, tg.interval, tg.timeout, tg.rise, tg.fall)
	}
}

func TestTargetKey(t *testing.T) {
	t.Parallel()
	ep := config.Endpoint{URL: "http://10.0.0.1"}
	h := fastHealth("http")
	key := targetKey("r", &ep, h)
	changes := map[string]func(*string, *config.Endpoint, *config.Health){
		"region":   func(r *string, _ *config.Endpoint, _ *config.Health) { *r = "s" },
		"url":      func(_ *string, e *config.Endpoint, _ *config.Health) { e.URL = "http://10.0.0.2" },
		"address":  func(_ *string, e *config.Endpoint, _ *config.Health) { e.Address = netip.MustParseAddr("10.0.0.1") },
		"hostname": func(_ *string, e *config.Endpoint, _ *config.Health) { e.Hostname = "a.example" },
		"type":     func(_ *string, _ *config.Endpoint, h *config.Health) { h.Type = "tcp" },
		"path":     func(_ *string, _ *config.Endpoint, h *config.Health) { h.Path = "/other" },
		"host":     func(_ *string, _ *config.Endpoint, h *config.Health) { h.Host = "x.example" },
		"expect":   func(_ *string, _ *config.Endpoint, h *config.Health) { h.Expect = []int{200} },
		"headers":  func(_ *string, _ *config.Endpoint, h *config.Health) { h.Headers = map[string]string{"A": "b"} },
		"interval": func(_ *string, _ *config.Endpoint, h *config.Health) { h.Interval *= 2 },
		"timeout":  func(_ *string, _ *config.Endpoint, h *config.Health) { h.Timeout *= 2 },
		"rise":     func(_ *string, _ *config.Endpoint, h *config.Health) { h.Rise++ },
		"fall":     func(_ *string, _ *config.Endpoint, h *config.Health) { h.Fall++ },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			r, e, hh := "r", ep, h
			change(&r, &e, &hh)
			if targetKey(r, &e, hh) == key {
				t.Errorf("changing %s keeps the key %s", name, key)
			}
		})
	}
	if again := targetKey("r", &config.Endpoint{URL: "http://10.0.0.1", Weight: 5}, h); again != key {
		t.Errorf("weight changed the key: %s vs %s", again, key)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	urlErr := func(err error) error { return &url.Error{Op: "Get", URL: "http://x/h", Err: err} }
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	tests := []struct {
		name        string
		err         error
		want        string
		wantTimeout bool
	}{
		{"deadline", urlErr(context.DeadlineExceeded), "timeout", true},
		{"refused", urlErr(opErr(syscall.ECONNREFUSED)), "connection refused", false},
		{"reset", urlErr(opErr(syscall.ECONNRESET)), "connection reset", false},
		{"unreachable", urlErr(opErr(syscall.EHOSTUNREACH)), "host unreachable", false},
		{"eof", urlErr(io.EOF), "connection closed", false},
		{"dns not found", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}),
			"dns: no such host", false},
		{"dns timeout", urlErr(&net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}), "timeout", true},
		{"other keeps innermost message", urlErr(fmt.Errorf("reading: %w", errors.New("malformed HTTP response"))),
			"malformed HTTP response", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, timeout := describe(tt.err)
			if got != tt.want || timeout != tt.wantTimeout {
				t.Errorf("describe = %q, %v; want %q, %v", got, timeout, tt.want, tt.wantTimeout)
			}
		})
	}
}

func TestErrorResultIsBounded(t *testing.T) {
	t.Parallel()
	r := errorResult(errors.New(strings.Repeat("x", 1000)))
	if len(r.text) != maxResultText || r.class != classFail {
		t.Errorf("result = %d bytes, class %v; want %d bytes, fail", len(r.text), r.class, maxResultText)
	}
}
