package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// screenUpstream answers every request with its path, and records them.
func screenUpstream(t *testing.T) *cannedUpstream {
	t.Helper()
	return newCannedUpstream(t, func(r *http.Request) (string, bool) {
		body := r.URL.Path
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, false
	})
}

// handOffs are first requests on a connection that the fast path hands to
// net/http, which then serves the rest of the connection: raw is sent
// (body after a 100 Continue when cont is set), and a 200 is expected.
var handOffs = []struct {
	name, raw, cont, method string
	sticky                  bool
}{
	{name: "HTTP/1.0 keep-alive", method: http.MethodGet,
		raw: "GET /first HTTP/1.0\r\nHost: " + testHost + "\r\nConnection: keep-alive\r\n\r\n"},
	{name: "chunked upload", method: http.MethodPost,
		raw: "POST /first HTTP/1.1\r\nHost: " + testHost + "\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
	{name: "expect 100-continue", method: http.MethodPost, cont: "abc",
		raw: "POST /first HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"},
	{name: "sticky cookie", method: http.MethodGet, sticky: true,
		raw: "GET /first HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n"},
}

// smuggled is a body that is a second request when framed by
// Transfer-Encoding.
var smuggled = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n"

// refusedLater are request heads the fast path refuses with 400 and a
// close, sent as a later request on a connection net/http serves.
var refusedLater = []struct{ name, raw string }{
	{"CL.TE", "POST /bad HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: " + strconv.Itoa(len(smuggled)) +
		"\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
	{"TE.CL", "POST /bad HTTP/1.1\r\nHost: " + testHost + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + smuggled},
	{"folded TE", "POST /bad HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: " + strconv.Itoa(len(smuggled)) +
		"\r\nTransfer-Encoding:\r\n chunked\r\n\r\n" + smuggled},
	{"HTTP/1.0 with TE", "POST /bad HTTP/1.0\r\nHost: " + testHost + "\r\nConnection: keep-alive\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n" + smuggled},
	{"duplicate differing CL", "POST /bad HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: 5\r\nContent-Length: " +
		strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
	{"absolute form, other host", "GET http://other.example.com/bad HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n"},
}

// screenHarness is a fast-path proxy in front of up, on cleartext or TLS,
// with a cookie-sticky service when sticky is set.
type screenHarness struct {
	h     *harness
	roots *x509.CertPool // nil on cleartext
}

func newScreenHarness(t *testing.T, up string, useTLS, sticky bool) *screenHarness {
	t.Helper()
	cfg := cannedConfig(up)
	if sticky {
		cfg.Services[0].Proxy.Sticky = "cookie"
	}
	if !useTLS {
		return &screenHarness{h: newHarness(t, cfg, fastPath)}
	}
	ln, tlsOn, roots := tlsListener(t)
	return &screenHarness{h: newHarness(t, cfg, fastPath, ln, tlsOn), roots: roots}
}

func (sh *screenHarness) dial(t *testing.T) *rawClient {
	t.Helper()
	if sh.roots == nil {
		return dialRaw(t, sh.h.addr)
	}
	conn, err := tls.Dial("tcp", sh.h.addr, &tls.Config{RootCAs: sh.roots, ServerName: "example.com", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// handOff sends a hand-off request and checks its answer.
func handOff(t *testing.T, c *rawClient, i int) {
	t.Helper()
	ho := handOffs[i]
	c.send(ho.raw)
	if ho.cont != "" {
		if resp, _ := c.read(ho.method); resp.StatusCode != http.StatusContinue {
			t.Fatalf("hand-off %s: got %d, want 100 Continue", ho.name, resp.StatusCode)
		}
		c.send(ho.cont)
	}
	if resp, body := c.read(ho.method); resp.StatusCode != 200 || body != "/first" || resp.Close {
		t.Fatalf("hand-off %s: got %d %q (close %v), want 200 /first kept open", ho.name, resp.StatusCode, body, resp.Close)
	}
}

// expectRefused reads a 400 with Connection: close, and then the close.
func expectRefused(t *testing.T, c *rawClient) {
	t.Helper()
	resp, body := c.read(http.MethodPost)
	if resp.StatusCode != 400 || !resp.Close {
		t.Errorf("got %d (close %v) %q, want 400 with Connection: close", resp.StatusCode, resp.Close, body)
	}
	if !c.closed(5 * time.Second) {
		t.Error("the connection stays open")
	}
}

// TestHandedRequestFramingRefused: on a connection the fast path handed
// to net/http, a later request whose framing a front end could read
// another way gets what the fast path answers: 400 with Connection:
// close, the connection closed, and nothing upstream.
func TestHandedRequestFramingRefused(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		for i, ho := range handOffs {
			t.Run(fmt.Sprintf("tls=%v/%s", useTLS, ho.name), func(t *testing.T) {
				up := screenUpstream(t)
				sh := newScreenHarness(t, up.URL, useTLS, ho.sticky)
				for _, bad := range refusedLater {
					c := sh.dial(t)
					before := up.requests.Load()
					handOff(t, c, i)
					c.send(bad.raw)
					expectRefused(t, c)
					if n := up.requests.Load() - before; n != 1 {
						t.Errorf("%s: upstream got %d requests, want the hand-off alone", bad.name, n)
					}
					if r, _ := up.lastRequest(); r != nil && r.URL.Path != "/first" {
						t.Errorf("%s: upstream got %s", bad.name, r.URL.Path)
					}
				}
				if n := sh.h.slowConns.Load(); n != int64(len(refusedLater)) {
					t.Errorf("net/http served %d connections, want %d", n, len(refusedLater))
				}
			})
		}
	}
}

// TestHandedPipelinedThenRefused: a good request pipelined before a
// refused one, both behind the hand-off in one write, is answered in full
// before the 400 and the close.
func TestHandedPipelinedThenRefused(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			up := screenUpstream(t)
			sh := newScreenHarness(t, up.URL, useTLS, false)
			for _, bad := range refusedLater {
				c := sh.dial(t)
				before := up.requests.Load()
				c.send(handOffs[1].raw + "GET /good HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n" + bad.raw)
				for _, want := range []string{"/first", "/good"} {
					if resp, body := c.read(http.MethodGet); resp.StatusCode != 200 || body != want {
						t.Fatalf("%s: got %d %q, want 200 %q", bad.name, resp.StatusCode, body, want)
					}
				}
				expectRefused(t, c)
				if n := up.requests.Load() - before; n != 2 {
					t.Errorf("%s: upstream got %d requests, want 2", bad.name, n)
				}
			}
		})
	}
}

// TestHandedChunkedUploadSplit: a long chunked upload with extensions and
// trailers, written in pieces cut at every kind of boundary, reaches the
// upstream intact on a handed connection, which then serves another
// request.
func TestHandedChunkedUploadSplit(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			up := screenUpstream(t)
			sh := newScreenHarness(t, up.URL, useTLS, false)
			c := sh.dial(t)
			handOff(t, c, 0)

			var body, wire strings.Builder
			wire.WriteString("POST /upload HTTP/1.1\r\nHost: " + testHost + "\r\nTransfer-Encoding: chunked\r\n\r\n")
			for i := 0; body.Len() < 300<<10; i++ {
				size := (i*7919)%9000 + 1
				chunk := strings.Repeat(string(rune('a'+i%26)), size)
				body.WriteString(chunk)
				ext := ""
				if i%3 == 0 {
					ext = ";n=" + strconv.Itoa(i)
				}
				wire.WriteString(strconv.FormatInt(int64(size), 16) + ext + "\r\n" + chunk + "\r\n")
			}
			wire.WriteString("0\r\nX-Sum: 1\r\n\r\n")
			raw := wire.String()
			go func() {
				for i, j := 0, 0; i < len(raw); j++ {
					n := []int{1, 2, 3, 5, 4093, 7, 11, 65536}[j%8]
					n = min(n, len(raw)-i)
					if _, err := io.WriteString(c.conn, raw[i:i+n]); err != nil {
						return
					}
					i += n
				}
			}()
			if resp, got := c.read(http.MethodPost); resp.StatusCode != 200 || got != "/upload" {
				t.Fatalf("got %d %q, want 200 /upload", resp.StatusCode, got)
			}
			if r, got := up.lastRequest(); r.URL.Path != "/upload" || got != body.String() {
				t.Fatalf("upstream got %s with %d bytes, want /upload with %d", r.URL.Path, len(got), body.Len())
			}
			if resp, got := c.get(testHost, "/after"); resp.StatusCode != 200 || got != "/after" {
				t.Fatalf("after the upload: got %d %q", resp.StatusCode, got)
			}
		})
	}
}

// TestHandedUpgrade: a WebSocket upgrade on a handed connection still
// works, and after the 101 the bytes pass as they are, even ones that
// look like a refused request; an upgrade the upstream declines leaves
// the connection screened.
func TestHandedUpgrade(t *testing.T) {
	upgrade := "GET /chat HTTP/1.1\r\nHost: " + testHost + "\r\nUpgrade: %s\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	// The hand-off: wsUpstream answers 400 to anything but an upgrade.
	handOff := func(t *testing.T, c *rawClient) {
		t.Helper()
		resp, _ := c.do(http.MethodGet, "GET /x HTTP/1.0\r\nHost: "+testHost+"\r\nConnection: keep-alive\r\n\r\n")
		if resp.StatusCode != 400 || resp.Close {
			t.Fatalf("hand-off: got %d (close %v), want the upstream's 400 on a kept connection", resp.StatusCode, resp.Close)
		}
	}
	for _, useTLS := range []bool{false, true} {
		sh := newScreenHarness(t, wsUpstream(t), useTLS, false)
		t.Run(fmt.Sprintf("tls=%v/switched", useTLS), func(t *testing.T) {
			c := sh.dial(t)
			handOff(t, c)
			if resp, _ := c.do(http.MethodGet, fmt.Sprintf(upgrade, "websocket")); resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("got %d, want 101", resp.StatusCode)
			}
			for _, msg := range []string{"hello", refusedLater[0].raw} {
				c.send(msg)
				buf := make([]byte, len(msg))
				if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != msg {
					t.Fatalf("echo of %q: got %q, %v", msg, buf, err)
				}
			}
		})
		t.Run(fmt.Sprintf("tls=%v/declined", useTLS), func(t *testing.T) {
			c := sh.dial(t)
			handOff(t, c)
			// Declined, with a refused request pipelined right behind it.
			c.send(fmt.Sprintf(upgrade, "other") + refusedLater[0].raw)
			if resp, _ := c.read(http.MethodGet); resp.StatusCode != 400 || resp.Close {
				t.Fatalf("declined upgrade: got %d (close %v), want the upstream's 400", resp.StatusCode, resp.Close)
			}
			expectRefused(t, c)
		})
	}
}

// TestHandedH2CPreface: an h2c preface that a fast-path connection hands
// over after a request of its own is served by net/http as HTTP/2.
func TestHandedH2CPreface(t *testing.T) {
	up := screenUpstream(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	if resp, body := c.get(testHost, "/one"); resp.StatusCode != 200 || body != "/one" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "\x00\x00\x00\x04\x00\x00\x00\x00\x00") // an empty SETTINGS frame
	head := make([]byte, 9)
	if _, err := io.ReadFull(c.br, head); err != nil {
		t.Fatalf("reading the server's first frame: %v", err)
	}
	if head[3] != 0x4 { // SETTINGS
		t.Fatalf("got frame type %#x, want SETTINGS", head[3])
	}
}

// TestHandedSlowHeadCut: on a handed connection, a later head dribbled a
// line at a time is cut at the header timeout from when net/http waits
// for it, as on the fast path: holding a head until it is whole does not
// leave it to the idle timeout.
func TestHandedSlowHeadCut(t *testing.T) {
	up := screenUpstream(t)
	const limit = 300 * time.Millisecond
	h := newHarness(t, cannedConfig(up.URL), fastPath, func(s *http.Server) { s.ReadHeaderTimeout = limit })
	c := dialRaw(t, h.addr)
	handOff(t, c, 0)
	start := time.Now()
	stop := dribbleHead(c.conn)
	defer stop()
	checkCut(t, c.br, start, limit)
}

// TestHandedSplitAndLargeHeads: on a handed connection, heads that arrive
// in pieces are put together and answered, and a head beyond the
// server's limit gets net/http's 431.
func TestHandedSplitAndLargeHeads(t *testing.T) {
	up := screenUpstream(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath, func(s *http.Server) { s.MaxHeaderBytes = 4 << 10 })
	c := dialRaw(t, h.addr)
	handOff(t, c, 0)
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
	}
	big := "GET / HTTP/1.1\r\nHost: " + testHost + "\r\nX-Big: " + strings.Repeat("b", 20<<10) + "\r\n\r\n"
	if resp, _ := c.do(http.MethodGet, big); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("got %d, want 431", resp.StatusCode)
	}
}

// TestHandedConnectThenRefused: after a CONNECT that no handler takes
// over, the bytes behind it are screened as requests again.
func TestHandedConnectThenRefused(t *testing.T) {
	up := screenUpstream(t)
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	c := dialRaw(t, h.addr)
	handOff(t, c, 0)
	before := up.requests.Load()
	c.send("CONNECT " + testHost + ":80 HTTP/1.1\r\nHost: " + testHost + ":80\r\n\r\n" + refusedLater[0].raw)
	resp, body := c.read(http.MethodGet)
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Close {
		t.Fatalf("CONNECT: got %d (close %v) %q, want an answer on a kept connection", resp.StatusCode, resp.Close, body)
	}
	expectRefused(t, c)
	if r, _ := up.lastRequest(); up.requests.Load()-before > 1 || r != nil && strings.Contains(r.URL.Path, "smuggled") {
		t.Errorf("upstream got %d requests after the hand-off, the last %v", up.requests.Load()-before, r.URL)
	}
}
