package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// TestFastHandover: requests the fast path does not take go to net/http,
// with the bytes already read, and the connection stays there.
func TestFastHandover(t *testing.T) {
	svc := proxyService("api", []string{testHost}, "eu")
	cfg := &config.Config{Regions: []config.Region{testRegion("eu", wsUpstream(t))}, Services: []config.Service{svc}}
	h := newHarness(t, cfg, fastPath)

	t.Run("GET then WebSocket on one connection", func(t *testing.T) {
		before := h.slowConns.Load()
		c := dialRaw(t, h.addr)
		if resp, _ := c.get(testHost, "/"); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain GET: got %d, want the upstream's 400", resp.StatusCode)
		}
		if n := h.slowConns.Load() - before; n != 0 {
			t.Fatalf("net/http took the connection after a plain GET")
		}
		resp, _ := c.do(http.MethodGet, "GET /chat HTTP/1.1\r\nHost: "+testHost+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: got %d, want 101", resp.StatusCode)
		}
		c.send("ping")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: got %q, %v", buf, err)
		}
		if n := h.slowConns.Load() - before; n != 1 {
			t.Errorf("net/http served %d connections, want 1", n)
		}
	})
	t.Run("h2c prior knowledge", func(t *testing.T) {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(h.request(http.MethodGet, testHost, "/", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.Header.Get("X-Meridian-Region") != "eu" {
			t.Errorf("got %s with region %q, want HTTP/2 from eu", resp.Proto, resp.Header.Get("X-Meridian-Region"))
		}
	})
}

// TestFastShutdown: Shutdown closes idle fast-path connections at once,
// waits for the one in flight, which ends with Connection: close.
func TestFastShutdown(t *testing.T) {
	upURL, arrived, release := heldUpstream(t)
	h := newHarness(t, cannedConfig(upURL), fastPath)
	idle := dialRaw(t, h.addr)
	if resp, _ := idle.get(testHost, "/"); resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	busy := dialRaw(t, h.addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	<-arrived

	shut := shutdownAsync(h.p, 10*time.Second)
	if !idle.closed(5 * time.Second) {
		t.Error("the idle connection is still open after Shutdown began")
	}
	waitFor(t, "the listener to close", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", h.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	pending(t, shut, 100*time.Millisecond)
	close(release)
	resp, body := busy.read(http.MethodGet)
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Errorf("in-flight request: got %d %q (close %v), want 200 done with Connection: close", resp.StatusCode, body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if !busy.closed(5 * time.Second) {
		t.Error("the busy connection is still open after its response")
	}
}

// TestFastShutdownGivesUp: Shutdown's context bounds the wait for a
// request that does not end, which it then cuts.
func TestFastShutdownGivesUp(t *testing.T) {
	arrived := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	busy := dialRaw(t, h.addr)
	busy.send("GET / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: got %v, want the context's deadline", err)
	}
	if !busy.closed(5 * time.Second) {
		t.Error("the busy connection is still open after Shutdown gave up")
	}
}

// TestFastTimeouts: the idle timeout closes a quiet keep-alive
// connection; a request head that never ends is cut (TestSlowHeadersCut).
func TestFastIdleTimeout(t *testing.T) {
	up := newCannedUpstream(t, always(okResponse))
	h := newHarness(t, cannedConfig(up.URL), fastPath, func(s *http.Server) { s.IdleTimeout = 200 * time.Millisecond })
	c := dialRaw(t, h.addr)
	c.get(testHost, "/")
	start := time.Now()
	if !c.closed(5 * time.Second) {
		t.Fatal("idle connection not closed")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v, want about 200ms", d)
	}
}

// TestMalformedRequests: what the fast path does not parse cleanly gets
// net/http's answer.
func TestMalformedRequests(t *testing.T) {
	tests := []struct {
		name, raw string
		status    int
	}{
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: " + testHost + "\r\n\r\n", 200},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Content-Length", "POST / HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: x\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: " + testHost + "\r\nX-A : 1\r\n\r\n", 400},
		{"bad escape in path", "GET /%zz HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n", 400},
		{"absolute form", "GET http://" + testHost + "/x HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n", 200},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n", 200},
		{"unknown method", "BREW / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n", 200},
		{"query re-encoded", "GET /?a=1;b=2 HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n", 200},
		{"Expect", "PUT / HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nx", 200},
		{"chunked request", "PUT / HTTP/1.1\r\nHost: " + testHost + "\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 200},
	}
	forPaths(t, func(t *testing.T, path servePath) {
		up := newCannedUpstream(t, always(okResponse))
		h := newHarness(t, cannedConfig(up.URL), path)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c := dialRaw(t, h.addr)
				method, _, _ := strings.Cut(tc.raw, " ")
				resp, _ := c.do(method, tc.raw)
				if resp.StatusCode == http.StatusContinue {
					resp, _ = c.read(method)
				}
				if resp.StatusCode != tc.status {
					t.Errorf("got %d, want %d", resp.StatusCode, tc.status)
				}
			})
		}
	})
}

// TestFastTLS: over TLS, HTTP/1.1 is served by the fast path and h2 by
// net/http; both, and a connection handed over midway, forward as https.
func TestFastTLS(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // drained, as an application would
		_ = json.NewEncoder(w).Encode(map[string]string{
			"proto": r.Header.Get("X-Forwarded-Proto"), "fwd": r.Header.Get("Forwarded"),
		})
	})
	ln, tlsOn, roots := tlsListener(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath, ln, tlsOn)
	check := func(t *testing.T, raw string) {
		t.Helper()
		var got map[string]string
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatalf("decoding %q: %v", raw, err)
		}
		if got["proto"] != "https" || !strings.HasSuffix(got["fwd"], ";proto=https") {
			t.Errorf("upstream got X-Forwarded-Proto %q, Forwarded %q, want https", got["proto"], got["fwd"])
		}
	}

	t.Run("http/1.1 on the fast path, then handed over", func(t *testing.T) {
		conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: roots, ServerName: "example.com", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
		_, body := c.get(testHost, "/")
		check(t, body)
		if n := h.slowConns.Load(); n != 0 {
			t.Fatalf("net/http took the connection after a plain GET")
		}
		_, body = c.do(http.MethodPut, "PUT / HTTP/1.1\r\nHost: "+testHost+"\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
		check(t, body)
		if n := h.slowConns.Load(); n != 1 {
			t.Errorf("net/http served %d connections, want 1", n)
		}
	})
	t.Run("h2 to net/http", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "example.com"}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		req := h.request(http.MethodGet, testHost, "/", nil)
		req.URL.Scheme = "https"
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			t.Errorf("got %s, want HTTP/2", resp.Proto)
		}
		check(t, string(raw))
	})
}

// tlsListener returns a TLS listener on loopback for "example.com" (h2
// and http/1.1), the harness tweak that gives its config to the server,
// and the roots that trust its certificate.
func tlsListener(t testing.TB) (net.Listener, func(*http.Server), *x509.CertPool) {
	t.Helper()
	certSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	certSrv.EnableHTTP2 = true
	certSrv.StartTLS()
	t.Cleanup(certSrv.Close)
	tc := certSrv.TLS.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	roots := certSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return tls.NewListener(inner, tc), func(s *http.Server) { s.TLSConfig = tc }, roots
}

func TestLookupBytesMatchesLookup(t *testing.T) {
	api, www := &service{name: "api"}, &service{name: "www"}
	tab := &table{hosts: map[string]*service{"api.example.com": api, "www.example.com": www, "::1": www, "127.0.0.1": api}}
	for _, host := range []string{
		"api.example.com", "API.Example.Com", "api.example.com:8443", "api.example.com.", "api.example.com.:80",
		"www.example.com", "[::1]:8080", "[::1]", "127.0.0.1:8080", "example.com", "", "[::1", "api.example.com:80:80",
		strings.Repeat("a", 300),
	} {
		if got, want := tab.lookupBytes([]byte(host)), tab.lookup(host); got != want {
			t.Errorf("lookupBytes(%q) = %v, lookup = %v", host, got, want)
		}
	}
}
