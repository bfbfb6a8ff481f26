package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
)

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func cannedConfig(url string) *config.Config {
	return &config.Config{
		Regions:  []config.Region{testRegion("eu", url)},
		Services: []config.Service{proxyService("api", []string{testHost}, "eu")},
	}
}

// TestFastKeepAliveAndPipelining: many requests on one client connection,
// one after the other and pipelined, reach the upstream over one pooled
// connection, and net/http never sees the client.
func TestFastKeepAliveAndPipelining(t *testing.T) {
	up := newCannedUpstream(t, func(r *http.Request) (string, bool) {
		body := r.URL.Path
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, false
	})
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	for i := 0; i < 100; i++ {
		path := "/seq/" + strconv.Itoa(i)
		if resp, body := c.get(testHost, path); resp.StatusCode != 200 || body != path {
			t.Fatalf("request %d: got %d %q, want 200 %q", i, resp.StatusCode, body, path)
		}
	}
	var batch strings.Builder
	for i := 0; i < 5; i++ {
		batch.WriteString("GET /pipe/" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	}
	c.send(batch.String())
	for i := 0; i < 5; i++ {
		if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != "/pipe/"+strconv.Itoa(i) {
			t.Fatalf("pipelined %d: got %d %q", i, resp.StatusCode, body)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("upstream got %d connections, want 1 kept alive", n)
	}
	if n := h.slowConns.Load(); n != 0 {
		t.Errorf("net/http served %d connections, want 0", n)
	}
	if got := h.metric("requests", "api", "eu", "200"); got != 105 {
		t.Errorf("got %v requests counted, want 105", got)
	}
	if st := h.p.RegionStats("api", "eu"); st.Requests != 105 || st.Errors != 0 {
		t.Errorf("shift guard stats: got %d requests, %d errors, want 105 and 0", st.Requests, st.Errors)
	}
}

// TestFastPoolClosed: idle upstream connections close when their endpoint
// leaves the configuration, and on Close.
func TestFastPoolClosed(t *testing.T) {
	a := newCannedUpstream(t, always(okResponse))
	b := newCannedUpstream(t, always(okResponse))
	h := newHarness(t, cannedConfig(a.URL), fastPath)
	c := dialRaw(t, h.addr)
	c.get(testHost, "/")
	if a.conns.Load() != 1 || a.closedN.Load() != 0 {
		t.Fatalf("a: %d connections, %d closed; want 1 open", a.conns.Load(), a.closedN.Load())
	}
	h.cfg = cannedConfig(b.URL)
	h.update(nil)
	waitFor(t, "a's idle connection to close", 5*time.Second, func() bool { return a.closedN.Load() == 1 })
	c.get(testHost, "/")
	h.p.Close()
	waitFor(t, "b's idle connection to close", 5*time.Second, func() bool { return b.closedN.Load() == 1 })
	if resp, _ := c.get(testHost, "/"); resp.StatusCode != 200 || b.conns.Load() != 2 {
		t.Errorf("after Close: got %d over %d connections to b, want 200 over a new one", resp.StatusCode, b.conns.Load())
	}
}

// TestResponseFraming relays every way an upstream may delimit a response
// on both paths alike, and checks that the client connection stays usable.
func TestResponseFraming(t *testing.T) {
	large := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	var chunked strings.Builder
	for i := 0; i < 64; i++ {
		chunked.WriteString("4000\r\n" + large[:0x4000] + "\r\n")
	}
	chunked.WriteString("0\r\n\r\n")
	answers := map[string]string{
		"/length":        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		"/chunked":       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
		"/until-close":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
		"/head":          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n",
		"/204":           "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
		"/304":           "HTTP/1.1 304 Not Modified\r\nContent-Type: text/html\r\nEtag: \"x\"\r\n\r\n",
		"/hints":         "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + okResponse,
		"/http10-close":  "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nold!",
		"/large":         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1048576\r\n\r\n" + large,
		"/large-chunked": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String(),
		"/sniffed":       "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>",
		"":               okResponse,
	}
	// /until-close is an answer that ends with the connection.
	answer := func(r *http.Request) (string, bool) {
		a, closeAfter := byPath(answers)(r)
		return a, closeAfter || r.URL.Path == "/until-close"
	}
	tests := []struct {
		name, method, path string
		status             int
		body               string
		header             map[string]string // "" = absent
		trailer            map[string]string
	}{
		{name: "content-length", path: "/length", status: 200, body: "hello", header: map[string]string{"Content-Length": "5"}},
		{name: "chunked with trailer", path: "/chunked", status: 200, body: "hello world",
			header: map[string]string{"Content-Length": ""}, trailer: map[string]string{"X-Sum": "42"}},
		{name: "until close, chunked to the client", path: "/until-close", status: 200, body: "until the end"},
		{name: "HEAD", method: http.MethodHead, path: "/head", status: 200, header: map[string]string{"Content-Length": "100"}},
		{name: "204", path: "/204", status: 204, header: map[string]string{"Content-Length": "", "X-A": "1"}},
		{name: "304", path: "/304", status: 304, header: map[string]string{"Content-Type": "", "Etag": `"x"`}},
		{name: "103 then 200", path: "/hints", status: 200, body: "ok"},
		{name: "HTTP/1.0 upstream", path: "/http10-close", status: 200, body: "old!"},
		{name: "large body", path: "/large", status: 200, body: large},
		{name: "large chunked body", path: "/large-chunked", status: 200, body: large[:64*0x4000]},
		{name: "content type sniffed", path: "/sniffed", status: 200, body: "<html>hi</html>",
			header: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
	}
	forPaths(t, func(t *testing.T, path servePath) {
		up := newCannedUpstream(t, answer)
		h := newHarness(t, cannedConfig(up.URL), path)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				method := tc.method
				if method == "" {
					method = http.MethodGet
				}
				c := dialRaw(t, h.addr)
				c.send(method + " " + tc.path + " HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
				resp, body := c.read(method)
				if resp.StatusCode == http.StatusEarlyHints {
					if got := resp.Header.Get("Link"); got != "</a.css>; rel=preload" {
						t.Errorf("103: got Link %q", got)
					}
					resp, body = c.read(method)
				}
				if resp.StatusCode != tc.status || body != tc.body {
					t.Errorf("got %d with %d bytes, want %d with %d bytes", resp.StatusCode, len(body), tc.status, len(tc.body))
				}
				if got := resp.Header.Get("X-Meridian-Region"); got != "eu" {
					t.Errorf("got X-Meridian-Region %q, want eu", got)
				}
				if resp.Header.Get("Date") == "" {
					t.Error("no Date")
				}
				for k, want := range tc.header {
					if got := strings.Join(resp.Header.Values(k), ","); got != want {
						t.Errorf("got %s %q, want %q", k, got, want)
					}
				}
				for k, want := range tc.trailer {
					if got := resp.Trailer.Get(k); got != want {
						t.Errorf("got trailer %s %q, want %q", k, got, want)
					}
				}
				// The connection carries on.
				if resp, body := c.get(testHost, "/"); resp.StatusCode != 200 || body != "ok" {
					t.Errorf("next request on the connection: got %d %q", resp.StatusCode, body)
				}
			})
		}
		if path == fastPath && h.slowConns.Load() != 0 {
			t.Errorf("net/http served %d connections, want 0", h.slowConns.Load())
		}
	})
}

// TestFastPostBody: a body larger than the connection buffer and a body
// that arrives after its head are forwarded whole, with Content-Length.
func TestFastPostBody(t *testing.T) {
	up := newCannedUpstream(t, always(okResponse))
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	body := strings.Repeat("b", 20<<10)
	c.send("POST /upload HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body[:100])
	c.send(body[100:])
	if resp, got := c.read(http.MethodPost); resp.StatusCode != 200 || got != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, got)
	}
	r, got := up.lastRequest()
	if got != body || r.ContentLength != int64(len(body)) {
		t.Errorf("upstream got %d bytes (Content-Length %d), want %d", len(got), r.ContentLength, len(body))
	}
	// An empty POST carries Content-Length: 0, as on the net/http path.
	c.send("POST /empty HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	c.read(http.MethodPost)
	if r, _ := up.lastRequest(); r.Header.Get("Content-Length") != "0" && r.ContentLength != 0 {
		t.Errorf("empty POST: upstream got Content-Length %d", r.ContentLength)
	}
	if h.slowConns.Load() != 0 {
		t.Errorf("net/http served %d connections, want 0", h.slowConns.Load())
	}
}

// TestFastStaleUpstreamConn: an upstream that closes its keep-alive
// connections after each response (without saying so) costs no failed
// request, no retry and no health report against it.
func TestFastStaleUpstreamConn(t *testing.T) {
	up := newCannedUpstream(t, func(*http.Request) (string, bool) { return okResponse, true })
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	requests := []string{
		"GET / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: 1\r\n\r\nx",
		"DELETE / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n",
	}
	for i, raw := range requests {
		// Wait until the upstream closed the previous connection, so that
		// the proxy's pooled one is stale for sure.
		waitFor(t, "the upstream to close", 5*time.Second, func() bool { return up.closedN.Load() == int64(i) })
		method, _, _ := strings.Cut(raw, " ")
		if resp, body := c.do(method, raw); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: got %d %q, want 200 ok", i, resp.StatusCode, body)
		}
	}
	if got := up.requests.Load(); got != int64(len(requests)) {
		t.Errorf("upstream got %d requests, want %d", got, len(requests))
	}
	if n := h.rep.count(0, 0, health.Outcome5xx); n != 0 {
		t.Errorf("got %d failures reported against the endpoint, want 0", n)
	}
	if n := h.rep.count(0, 0, health.OutcomeSuccess); n != len(requests) {
		t.Errorf("got %d successes reported, want %d", n, len(requests))
	}
	if got := h.metric("retries", "api", "eu", "reset"); got != 0 {
		t.Errorf("got %v retries, want 0", got)
	}
}
