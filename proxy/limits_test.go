package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
)

// withLimits is a harness tweak that sets the proxy's connection limits.
func withLimits(l Limits) func(*Options) { return func(o *Options) { o.Limits = l } }

// dialFrom opens a raw client connection to addr from the loopback
// address src.
func dialFrom(t testing.TB, src, addr string) *rawClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// served reports whether c gets a 200 for a GET.
func (c *rawClient) served() bool {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, "GET / HTTP/1.1\r\nHost: "+testHost+"\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (h *harness) rejected(reason string) float64 {
	return testutil.ToFloat64(h.p.conns.rejected.WithLabelValues(reason))
}

// TestPerSourceLimit: a source gets max_per_source connections, whichever
// path serves them (one here is handed to net/http), and no more; another
// source still connects; a closed connection frees its place.
func TestPerSourceLimit(t *testing.T) {
	up := newCannedUpstream(t, always(okResponse))
	h := newHarness(t, cannedConfig(up.URL), fastPath, withLimits(Limits{Max: 100, MaxPerSource: 3}))

	for range 2 { // held open until the test ends
		if !dialFrom(t, "127.0.0.1", h.addr).served() {
			t.Fatal("a connection under the limit was not served")
		}
	}
	// HTTP/1.0 keep-alive goes to net/http, which keeps the connection.
	slow := dialFrom(t, "127.0.0.1", h.addr)
	resp, _ := slow.do(http.MethodGet, "GET / HTTP/1.0\r\nHost: "+testHost+"\r\nConnection: keep-alive\r\n\r\n")
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("HTTP/1.0 keep-alive: got %d (close %v), want 200 kept open", resp.StatusCode, resp.Close)
	}
	if n := h.slowConns.Load(); n != 1 {
		t.Fatalf("net/http served %d connections, want 1", n)
	}

	over := dialFrom(t, "127.0.0.1", h.addr)
	if !over.closed(5 * time.Second) {
		t.Fatal("a fourth connection from 127.0.0.1 was not closed")
	}
	if got := h.rejected(rejectPerSource); got != 1 {
		t.Errorf("got %v rejected{reason=max_per_source}, want 1", got)
	}
	other := dialFrom(t, "127.0.0.2", h.addr)
	if !other.served() {
		t.Fatal("a connection from 127.0.0.2 was not served")
	}
	if got := testutil.ToFloat64(h.p.conns.gauge); got != 4 {
		t.Errorf("got %v open connections, want 4", got)
	}

	// Closing the one net/http holds gives its place back.
	slow.conn.Close()
	waitFor(t, "the handed connection's place to come back", 5*time.Second, func() bool {
		return testutil.ToFloat64(h.p.conns.gauge) == 3
	})
	again := dialFrom(t, "127.0.0.1", h.addr)
	if !again.served() {
		t.Fatal("a connection from 127.0.0.1 was refused after one closed")
	}
}

// TestGlobalLimit: no more than max connections are held, from any source.
func TestGlobalLimit(t *testing.T) {
	up := newCannedUpstream(t, always(okResponse))
	h := newHarness(t, cannedConfig(up.URL), fastPath, withLimits(Limits{Max: 3}))
	for _, src := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		if !dialFrom(t, src, h.addr).served() {
			t.Fatalf("a connection from %s under the limit was not served", src)
		}
	}
	if !dialFrom(t, "127.0.0.4", h.addr).closed(5 * time.Second) {
		t.Fatal("a connection over the global limit was not closed")
	}
	if got := h.rejected(rejectMax); got != 1 {
		t.Errorf("got %v rejected{reason=max}, want 1", got)
	}
	if got := h.rejected(rejectPerSource); got != 0 {
		t.Errorf("got %v rejected{reason=max_per_source}, want 0", got)
	}
}

// TestBusyIdleTimeout: above busy_at of max, idle connections close after
// the busy idle timeout, those already idle too; below it again, the idle
// timeout is long again.
func TestBusyIdleTimeout(t *testing.T) {
	up := newCannedUpstream(t, always(okResponse))
	const short = 300 * time.Millisecond
	h := newHarness(t, cannedConfig(up.URL), fastPath,
		withLimits(Limits{Max: 10, BusyAt: 0.4, BusyIdleTimeout: short, IdleTimeout: time.Minute}))

	early := dialRaw(t, h.addr)
	if !early.served() {
		t.Fatal("not served")
	}
	// Its second request is served from a raw read; it then waits idle.
	if !early.served() {
		t.Fatal("not served")
	}
	if early.closed(2 * short) {
		t.Fatal("an idle connection closed early while the node is not busy")
	}
	var rest []*rawClient
	for range 3 { // 4 of 10: busy
		c := dialRaw(t, h.addr)
		if !c.served() {
			t.Fatal("not served")
		}
		rest = append(rest, c)
	}
	start := time.Now()
	if !early.closed(10 * time.Second) {
		t.Fatal("a connection idle before the node turned busy stayed open")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v, want about %v", d, short)
	}
	start = time.Now()
	if !rest[0].closed(10 * time.Second) {
		t.Fatal("a connection that went idle while busy stayed open")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v, want about %v", d, short)
	}
	waitFor(t, "the idle connections to close", 10*time.Second, func() bool {
		return testutil.ToFloat64(h.p.conns.gauge) == 0
	})
	calm := dialRaw(t, h.addr)
	for range 2 { // the second from a raw read
		if !calm.served() {
			t.Fatal("not served")
		}
	}
	if calm.closed(4 * short) {
		t.Error("an idle connection closed at the busy timeout once the node was no longer busy")
	}
}

// TestUpstreamIdleBounded: after a burst of concurrent clients leaves, the
// endpoint's idle pool keeps no more than its limit, and the connections
// the traffic no longer uses are closed period by period.
func TestUpstreamIdleBounded(t *testing.T) {
	// Restored after the harness's own cleanup, which closes the pools.
	l, d := fastpath.IdleLimit, fastpath.IdlePurgeEvery
	t.Cleanup(func() { fastpath.IdleLimit, fastpath.IdlePurgeEvery = l, d })
	fastpath.IdleLimit, fastpath.IdlePurgeEvery = 8, 100*time.Millisecond

	const burst = 20
	var open atomic.Int64
	var arrived sync.WaitGroup
	arrived.Add(burst)
	release := make(chan struct{})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/burst" {
			arrived.Done()
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	h := newHarness(t, cannedConfig(up.URL), fastPath)

	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			c := dialRaw(t, h.addr)
			resp, body := c.get(testHost, "/burst")
			if resp.StatusCode != 200 || body != "ok" {
				t.Errorf("got %d %q", resp.StatusCode, body)
			}
			c.conn.Close()
		})
	}
	arrived.Wait()
	if n := open.Load(); n != burst {
		t.Fatalf("the upstream holds %d connections, want %d", n, burst)
	}
	close(release)
	wg.Wait()
	waitFor(t, "the pool to keep at most its limit", 5*time.Second, func() bool { return open.Load() <= 8 })
	pool := h.pool(up.URL)
	waitFor(t, "unused connections to be purged", 10*time.Second, func() bool { return pool.Idle() <= 1 && open.Load() <= 1 })

	// A steady trickle keeps its one connection.
	for range 3 {
		if resp, _ := h.get(testHost, "/"); resp.StatusCode != 200 {
			t.Fatalf("got %d", resp.StatusCode)
		}
		time.Sleep(2 * fastpath.IdlePurgeEvery)
	}
	if n := open.Load(); n != 1 {
		t.Errorf("the upstream holds %d connections after a trickle, want 1", n)
	}
}

// pool returns the fast path's pool for the endpoint at url.
func (h *harness) pool(url string) *fastpath.Pool {
	h.t.Helper()
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	for k, st := range h.p.endpoints {
		if strings.TrimSuffix(k.url, "/") == strings.TrimSuffix(url, "/") {
			return &st.fast
		}
	}
	h.t.Fatalf("no endpoint %s", url)
	return nil
}

// TestSourceKey: IPv4 addresses count one by one, IPv6 ones by /64.
func TestSourceKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.7:443", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::"},
		{"[fe80::1%eth0]:443", "fe80::"},
	}
	for _, tt := range tests {
		ap := netip.MustParseAddrPort(tt.addr)
		got := sourceKey(net.TCPAddrFromAddrPort(ap))
		if got.String() != tt.want {
			t.Errorf("sourceKey(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	if got := sourceKey(pipeAddr{}); got.IsValid() {
		t.Errorf("sourceKey(pipe) = %s, want none", got)
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// TestShutdownWaitsForBothPaths: Proxy.Shutdown waits for a request in
// flight on a connection net/http serves, as for the fast path's, and
// then returns; Serve returns http.ErrServerClosed and takes no listener
// after it.
func TestShutdownWaitsForBothPaths(t *testing.T) {
	upURL, arrived, release := heldUpstream(t)
	h := newHarness(t, cannedConfig(upURL), fastPath)
	busy := dialRaw(t, h.addr)
	busy.send("GET /slow HTTP/1.0\r\nHost: " + testHost + "\r\n\r\n") // net/http serves HTTP/1.0
	<-arrived
	if n := h.slowConns.Load(); n != 1 {
		t.Fatalf("net/http served %d connections, want 1", n)
	}
	shut := shutdownAsync(h.p, 10*time.Second)
	pending(t, shut, 200*time.Millisecond)
	close(release)
	resp, body := busy.read(http.MethodGet)
	if resp.StatusCode != 200 || body != "done" {
		t.Errorf("in-flight request: got %d %q, want 200 done", resp.StatusCode, body)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last request")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.p.Serve(ln, h.p.Server("")); err != http.ErrServerClosed {
		t.Errorf("Serve after Shutdown: got %v, want http.ErrServerClosed", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("Serve after Shutdown left its listener open")
	}
}

// TestH2ConnectionCounted: a TLS connection that chose h2 goes to the h2
// engine; it counts until it closes.
func TestH2ConnectionCounted(t *testing.T) {
	up := newCannedUpstream(t, always(okResponse))
	ln, tlsOn, roots := tlsListener(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath, ln, tlsOn, withLimits(Limits{Max: 10, MaxPerSource: 1}))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "example.com"}, ForceAttemptHTTP2: true}
	req := h.request(http.MethodGet, testHost, "/", nil)
	req.URL.Scheme = "https"
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("got %s, want HTTP/2", resp.Proto)
	}
	if got := testutil.ToFloat64(h.p.conns.gauge); got != 1 {
		t.Errorf("got %v open connections, want 1", got)
	}
	if !dialRaw(t, h.addr).closed(5 * time.Second) {
		t.Error("a second connection from the source was not closed")
	}
	tr.CloseIdleConnections()
	waitFor(t, "the h2 connection's place to come back", 5*time.Second, func() bool {
		return testutil.ToFloat64(h.p.conns.gauge) == 0
	})
}

// TestH2BusyIdleTimeout: HTTP/2 connections with no open stream get the
// busy idle timeout while the node is busy, those idle already when it
// turns busy and those that go idle meanwhile; a connection with a
// stream open is never closed for it, and the timeout is long when the
// node is not busy.
func TestH2BusyIdleTimeout(t *testing.T) {
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		up := newAttackUpstream(t)
		const short = 300 * time.Millisecond
		s := serveH2(t, h2Config(up.URL),
			withLimits(Limits{Max: 10, BusyAt: 0.4, BusyIdleTimeout: short, IdleTimeout: time.Minute}))
		served := func(fc *frameConn) {
			t.Helper()
			fc.handshake()
			fc.get(1, testHost, "/")
			if status, _, rst := fc.response(1); status != http.StatusOK {
				t.Fatalf("got status %d (reset %v), want 200", status, rst)
			}
		}
		early := s.dialFrames(t, mode)
		served(early)
		if _, closed := early.closedOrGoAway(2 * short); closed {
			t.Fatal("an idle HTTP/2 connection closed early while the node is not busy")
		}

		// Three more connections, each with a stream held open: 4 of 10
		// open, the node is busy.
		var holders []*frameConn
		for range 3 {
			fc := s.dialFrames(t, mode)
			fc.handshake()
			fc.get(1, testHost, "/hold")
			holders = append(holders, fc)
		}
		waitFor(t, "the held requests to reach the upstream", 10*time.Second, func() bool { return up.active.Load() == 3 })
		start := time.Now()
		ga, closed := early.closedOrGoAway(10 * time.Second)
		if !closed {
			t.Fatal("an HTTP/2 connection idle before the node turned busy stayed open")
		}
		if ga != nil && ga.ErrCode != http2.ErrCodeNo {
			t.Errorf("GOAWAY %v, want NO_ERROR", ga.ErrCode)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closed after %v, want about %v", d, short)
		}

		// One that goes idle while the node is busy (the holders and it:
		// 4 open).
		late := s.dialFrames(t, mode)
		served(late)
		start = time.Now()
		if _, closed := late.closedOrGoAway(10 * time.Second); !closed {
			t.Fatal("an HTTP/2 connection that went idle while busy stayed open")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closed after %v, want about %v", d, short)
		}

		// The holders, their streams open all along, are still served.
		up.free()
		for _, fc := range holders {
			if status, _, rst := fc.response(1); status != http.StatusOK {
				t.Errorf("held stream: status %d (reset %v), want 200", status, rst)
			}
		}
	})
}
