package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// probeOnce builds a checker for one region and runs its first endpoint's
// probe once.
func probeOnce(t *testing.T, r config.Region, opts Options) result {
	t.Helper()
	c := newChecker(t, []config.Region{r}, opts)
	ep := c.regions[0].endpoints[0]
	if ep.prober == nil {
		t.Fatalf("endpoint %s has no prober", ep.t.name)
	}
	return ep.prober.probe(context.Background())
}

func TestHTTPProbe(t *testing.T) {
	t.Parallel()
	ok := newFlipServer(t, http.StatusOK)
	unavailable := newFlipServer(t, http.StatusServiceUnavailable)
	noContent := newFlipServer(t, http.StatusNoContent)
	redirect := httptest.NewServer(http.RedirectHandler("/elsewhere", http.StatusFound))
	t.Cleanup(redirect.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	hang := newHangListener(t)
	closed := "http://" + closedAddr(t)

	withExpect := func(codes ...int) config.Health {
		h := fastHealth("http")
		h.Expect = codes
		return h
	}
	tests := []struct {
		name   string
		url    string
		health config.Health
		want   string
		class  class
	}{
		{"200 passes", ok.URL, fastHealth("http"), "ok", classOK},
		{"204 passes as 2xx", noContent.URL, fastHealth("http"), "ok", classOK},
		{"503 fails", unavailable.URL, fastHealth("http"), "status 503", classFail},
		{"503 expected passes", unavailable.URL, withExpect(503), "ok", classOK},
		{"200 not in expect fails", ok.URL, withExpect(204), "status 200", classFail},
		{"redirect is not followed", redirect.URL, fastHealth("http"), "status 302", classFail},
		{"closed server refuses", closed, fastHealth("http"), "connection refused", classFail},
		{"hanging server times out", hang.URL(), fastHealth("http"), "timeout", classTimeout},
		{"slow server times out", slow.URL, fastHealth("http"), "timeout", classTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			got := probeOnce(t, regionOf("r", tt.health, 1, tt.url), Options{})
			if got.text != tt.want || got.class != tt.class {
				t.Errorf("probe = %q (%v), want %q (%v)", got.text, got.class, tt.want, tt.class)
			}
			if tt.class == classOK && got.rtt <= 0 {
				t.Errorf("rtt = %v, want > 0", got.rtt)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("probe took %v, want it bounded by the 500ms timeout", took)
			}
		})
	}
}

func TestHTTPProbeRequest(t *testing.T) {
	t.Parallel()
	srv := newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	h.Path = "/ready?deep=1"
	h.Host = "api.example.com"
	h.Headers = map[string]string{"X-Probe": "yes", "User-Agent": "custom-agent"}
	r := regionOf("r", h, 1, srv.URL+"/base/")
	if got := probeOnce(t, r, Options{}); got.text != "ok" {
		t.Fatalf("probe = %q, want ok", got.text)
	}
	req := srv.lastRequest()
	checks := []struct{ what, got, want string }{
		{"path", req.URL.Path, "/base/ready"},
		{"query", req.URL.RawQuery, "deep=1"},
		{"host", req.Host, "api.example.com"},
		{"X-Probe", req.Header.Get("X-Probe"), "yes"},
		{"User-Agent", req.Header.Get("User-Agent"), "custom-agent"},
		{"method", req.Method, http.MethodGet},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestHTTPProbeDefaultUserAgent(t *testing.T) {
	t.Parallel()
	srv := newFlipServer(t, http.StatusOK)
	probeOnce(t, regionOf("r", fastHealth("http"), 1, srv.URL), Options{})
	if got := srv.lastRequest().Header.Get("User-Agent"); got != "meridian-health" {
		t.Errorf("User-Agent = %q, want meridian-health", got)
	}
}

func TestHTTPSProbe(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		sni []string
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		sni = append(sni, hello.ServerName)
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	trusted := &tls.Config{RootCAs: pool}
	plain := newFlipServer(t, http.StatusOK)
	httpURL := "http://" + srv.Listener.Addr().String()
	plainTCP := newGarbageServer(t)

	// Generous timeouts: the first handshake against the system roots
	// loads them, which is slow under the race detector.
	tlsHealth := func(typ string) config.Health {
		h := fastHealth(typ)
		h.Timeout = config.Duration(5 * time.Second)
		return h
	}
	withHost := func(typ, host string) config.Health {
		h := tlsHealth(typ)
		h.Host = host
		return h
	}
	tests := []struct {
		name   string
		url    string
		health config.Health
		tls    *tls.Config
		want   string // exact, or a prefix ending in "…"
	}{
		{"trusted certificate", srv.URL, tlsHealth("https"), trusted, "ok"},
		{"type http keeps https url", srv.URL, tlsHealth("http"), trusted, "ok"},
		{"type https forces tls on an http url", httpURL, tlsHealth("https"), trusted, "ok"},
		{"sni from health.host", srv.URL, withHost("https", "example.com"), trusted, "ok"},
		{"wrong sni", srv.URL, withHost("https", "wrong.test"), trusted,
			"tls: x509: certificate is valid for example.com, *.example.com, not wrong.test"},
		{"unknown authority", srv.URL, tlsHealth("https"), nil,
			"tls: x509: certificate signed by unknown authority…"},
		{"tls to a plain server", plain.URL, tlsHealth("https"), trusted,
			"http: server gave HTTP response to HTTPS client"},
		{"plain http to a tls server", httpURL, tlsHealth("http"), trusted, "status 400"},
		{"tls to a plain port", "http://" + plainTCP, tlsHealth("https"), trusted,
			"tls: first record does not look like a TLS handshake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := probeOnce(t, regionOf("r", tt.health, 1, tt.url), Options{TLSConfig: tt.tls})
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(got.text, prefix) {
					t.Errorf("probe = %q, want prefix %q", got.text, prefix)
				}
			} else if got.text != tt.want {
				t.Errorf("probe = %q, want %q", got.text, tt.want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	wantSNI := map[string]bool{"example.com": false, "wrong.test": false}
	for _, s := range sni {
		if _, ok := wantSNI[s]; ok {
			wantSNI[s] = true
		}
	}
	for s, seen := range wantSNI {
		if !seen {
			t.Errorf("server never saw SNI %q (saw %q)", s, sni)
		}
	}
}

func TestTCPProbe(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	tests := []struct {
		name  string
		url   string
		want  string
		class class
	}{
		{"open port connects", "http://" + ln.Addr().String(), "ok", classOK},
		{"closed port refuses", "http://" + closedAddr(t), "connection refused", classFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := probeOnce(t, regionOf("r", fastHealth("tcp"), 1, tt.url), Options{})
			if got.text != tt.want || got.class != tt.class {
				t.Errorf("probe = %q (%v), want %q (%v)", got.text, got.class, tt.want, tt.class)
			}
		})
	}
}

// newGarbageServer accepts connections, writes a line that is neither TLS
// nor HTTP and closes them; it returns its address.
func newGarbageServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "\x00\x01garbage\r\n")
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}
