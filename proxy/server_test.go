package proxy

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

func TestServerSettings(t *testing.T) {
	p := New(Options{Logger: quietLogger()})
	srv := p.Server("127.0.0.1:8080")
	switch {
	case srv.Addr != "127.0.0.1:8080":
		t.Errorf("got Addr %q", srv.Addr)
	case srv.Handler != p:
		t.Error("handler is not the proxy")
	case srv.ReadHeaderTimeout <= 0 || srv.IdleTimeout <= 0:
		t.Errorf("got ReadHeaderTimeout %v IdleTimeout %v, want both set", srv.ReadHeaderTimeout, srv.IdleTimeout)
	case srv.MaxHeaderBytes != 64<<10:
		t.Errorf("got MaxHeaderBytes %d, want 64KiB", srv.MaxHeaderBytes)
	case srv.Protocols == nil || !srv.Protocols.HTTP1() || !srv.Protocols.HTTP2() || !srv.Protocols.UnencryptedHTTP2():
		t.Errorf("got protocols %v, want HTTP/1, HTTP/2 and h2c", srv.Protocols)
	}
}

func TestNotConfigured(t *testing.T) {
	p := New(Options{Logger: quietLogger()})
	w := &recorder{header: http.Header{}}
	p.ServeHTTP(w, mustRequest(t, testHost))
	if w.code != http.StatusServiceUnavailable || !strings.Contains(w.body.String(), "not configured") {
		t.Errorf("got %d %q, want 503 not configured", w.code, w.body.String())
	}
}

func TestOversizedHeadersGet431(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := &named{name: "up"}
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", upstream(t, up.ServeHTTP).URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu")},
		}
		h := newHarness(t, cfg, path)
		req := h.request(http.MethodGet, testHost, "/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 80<<10))
		resp, _ := h.do(req)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("got status %d, want 431", resp.StatusCode)
		}
		req = h.request(http.MethodGet, testHost, "/", nil)
		req.Header.Set("X-Fine", strings.Repeat("a", 16<<10))
		if resp, _ := h.do(req); resp.StatusCode != http.StatusOK {
			t.Errorf("16KiB header: got status %d, want 200", resp.StatusCode)
		}
		if up.count() != 1 {
			t.Errorf("upstream got %d requests, want 1", up.count())
		}
	})
}

func TestSlowHeadersCut(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", deadURL(t))},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu")},
		}
		const limit = 300 * time.Millisecond
		h := newHarness(t, cfg, func(s *http.Server) { s.ReadHeaderTimeout = limit }, path)

		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		stop := dribbleHead(conn)
		defer stop()
		if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		checkCut(t, conn, start, limit)
	})
}

// recorder is a minimal ResponseWriter for handler-level tests.
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

func mustRequest(t *testing.T, host string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	return req
}
