package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
)

// The tests below run on a connection that has served one request, so
// that the rest go through serveRaw's loop.

// echoPathUpstream answers every request with its path.
func echoPathUpstream(t *testing.T) *cannedUpstream {
	t.Helper()
	return newCannedUpstream(t, func(r *http.Request) (string, bool) {
		body := r.URL.Path
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, false
	})
}

// TestRawPipelineFillsBuffer: more pipelined requests than the client
// buffer holds, in one write, are all answered in order: a read that fills
// the buffer is followed by another, as no new readiness event would come
// for the bytes left in the socket.
func TestRawPipelineFillsBuffer(t *testing.T) {
	up := echoPathUpstream(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	if resp, _ := c.get(testHost, "/first"); resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	const n = 400 // about 3 buffers of heads
	var batch strings.Builder
	for i := range n {
		batch.WriteString("GET /p/" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	}
	if batch.Len() < 2*fastpath.ClientBufSize {
		t.Fatalf("batch of %d bytes does not overflow the %d-byte buffer", batch.Len(), fastpath.ClientBufSize)
	}
	go func() { _, _ = io.WriteString(c.conn, batch.String()) }() // the replies are read meanwhile
	for i := range n {
		want := "/p/" + strconv.Itoa(i)
		if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != want {
			t.Fatalf("pipelined %d: got %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
	}
	h.checkFast(fastPath)
}

// TestRawSplitHeadsAndBodies: heads and bodies that arrive in pieces on a
// kept-alive connection are put together; a body that is not all there
// yet is read the blocking way, and the loop takes over again after.
func TestRawSplitHeadsAndBodies(t *testing.T) {
	up := echoPathUpstream(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	for i := range 3 {
		path := "/split/" + strconv.Itoa(i)
		head := "GET " + path + " HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n"
		for j := 0; j < len(head); j += 7 {
			c.send(head[j:min(j+7, len(head))])
			time.Sleep(2 * time.Millisecond)
		}
		if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != path {
			t.Fatalf("split head %d: got %d %q, want 200 %q", i, resp.StatusCode, body, path)
		}
		c.send("POST /post/" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: 10\r\n\r\n01234")
		time.Sleep(20 * time.Millisecond)
		c.send("56789")
		if resp, _ := c.read(http.MethodPost); resp.StatusCode != 200 {
			t.Fatalf("split body %d: got %d", i, resp.StatusCode)
		}
		if _, body := up.lastRequest(); body != "0123456789" {
			t.Fatalf("split body %d: upstream got %q", i, body)
		}
	}
	h.checkFast(fastPath)
}

// TestRawSlowHeadCut: on a kept-alive connection, a head dribbled a line
// at a time is cut at the header timeout from its first byte; each line
// does not start the clock again.
func TestRawSlowHeadCut(t *testing.T) {
	up := echoPathUpstream(t)
	const limit = 300 * time.Millisecond
	h := newHarness(t, cannedConfig(up.URL), fastPath, func(s *http.Server) { s.ReadHeaderTimeout = limit })
	c := dialRaw(t, h.addr)
	if resp, _ := c.get(testHost, "/first"); resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	start := time.Now()
	stop := dribbleHead(c.conn)
	defer stop()
	checkCut(t, c.br, start, limit)
}

// TestRawLargeHeadHandedOver: a head larger than the buffer on a
// kept-alive connection goes to net/http, which answers 431.
func TestRawLargeHeadHandedOver(t *testing.T) {
	up := echoPathUpstream(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath, func(s *http.Server) { s.MaxHeaderBytes = 4 << 10 })
	c := dialRaw(t, h.addr)
	if resp, _ := c.get(testHost, "/first"); resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	big := "GET / HTTP/1.1\r\nHost: " + testHost + "\r\nX-Big: " + strings.Repeat("b", 2*fastpath.ClientBufSize) + "\r\n\r\n"
	if resp, _ := c.do(http.MethodGet, big); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("got %d, want 431", resp.StatusCode)
	}
}

// TestRawMixedRequests: on one kept-alive connection, a request for an
// unknown host gets 421 and the connection goes on; an HTTP/1.0 request
// hands the connection to net/http, which answers it and the next one.
func TestRawMixedRequests(t *testing.T) {
	up := echoPathUpstream(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	if resp, body := c.get(testHost, "/one"); resp.StatusCode != 200 || body != "/one" {
		t.Fatalf("first: got %d %q", resp.StatusCode, body)
	}
	if resp, _ := c.get("nobody.example", "/"); resp.StatusCode != http.StatusMisdirectedRequest || resp.Close {
		t.Fatalf("unknown host: got %d (close %v), want 421 on a kept connection", resp.StatusCode, resp.Close)
	}
	if resp, body := c.get(testHost, "/two"); resp.StatusCode != 200 || body != "/two" {
		t.Fatalf("after 421: got %d %q", resp.StatusCode, body)
	}
	if n := h.slowConns.Load(); n != 0 {
		t.Fatalf("net/http served %d connections before the HTTP/1.0 request", n)
	}
	resp, body := c.do(http.MethodGet, "GET /old HTTP/1.0\r\nHost: "+testHost+"\r\nConnection: keep-alive\r\n\r\n")
	if resp.StatusCode != 200 || body != "/old" {
		t.Fatalf("HTTP/1.0: got %d %q", resp.StatusCode, body)
	}
	if resp, body := c.get(testHost, "/three"); resp.StatusCode != 200 || body != "/three" {
		t.Fatalf("after the handover: got %d %q", resp.StatusCode, body)
	}
	if n := h.slowConns.Load(); n != 1 {
		t.Errorf("net/http served %d connections, want the handed one", n)
	}
}
