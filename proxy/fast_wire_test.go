package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/health"
)

// wireUpstream is a raw HTTP/1.1 upstream whose answers a test writes
// byte for byte: serve runs for every request read (n counts them from 1)
// and returns false to close the connection.
type wireUpstream struct {
	URL      string
	conns    atomic.Int64
	requests atomic.Int64
	eofs     atomic.Int64 // connections the proxy closed first
	closed   atomic.Int64 // connections closed, by either side
}

func newWireUpstream(t testing.TB, serve func(c net.Conn, r *http.Request, n int64) bool) *wireUpstream {
	t.Helper()
	u := &wireUpstream{}
	u.URL = serveRaw(t, func(c net.Conn) {
		u.conns.Add(1)
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
					u.eofs.Add(1)
				}
				return
			}
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				return
			}
			if !serve(c, r, u.requests.Add(1)) {
				return
			}
		}
	}, func() { u.closed.Add(1) })
	return u
}

// pathResponse is a 200 whose body is the request's path.
func pathResponse(r *http.Request) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(r.URL.Path)) + "\r\n\r\n" + r.URL.Path
}

const strayResponse = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"

// TestStrayUpstreamResponse: an upstream that writes a second, unsolicited
// response after answering (with the answer, or later while the connection
// is idle) never gets it to a client: 30 later clients, each on a new
// connection, all get their own response.
func TestStrayUpstreamResponse(t *testing.T) {
	for _, later := range []bool{false, true} {
		name := "with the answer"
		if later {
			name = "while idle"
		}
		t.Run(name, func(t *testing.T) {
			forPaths(t, func(t *testing.T, path servePath) {
				taken, wrote := make(chan struct{}), make(chan struct{}, 1)
				up := newWireUpstream(t, func(c net.Conn, r *http.Request, _ int64) bool {
					if !later {
						_, err := io.WriteString(c, pathResponse(r)+strayResponse)
						wrote <- struct{}{}
						return err == nil
					}
					if _, err := io.WriteString(c, pathResponse(r)); err != nil {
						return false
					}
					select {
					case <-taken:
					case <-time.After(10 * time.Second):
						return false
					}
					_, err := io.WriteString(c, strayResponse)
					wrote <- struct{}{}
					return err == nil
				})
				h := newHarness(t, cannedConfig(up.URL), path)
				for i := range 30 {
					p := "/client/" + strconv.Itoa(i)
					c := dialRaw(t, h.addr)
					if resp, body := c.get(testHost, p); resp.StatusCode != 200 || body != p {
						t.Fatalf("client %d: got %d %q, want 200 %q", i, resp.StatusCode, body, p)
					}
					if later {
						taken <- struct{}{}
					}
					<-wrote
					if path == slowPath {
						// net/http notices the stray bytes as they arrive
						// and closes the connection; it may pick the
						// connection again before it does.
						waitFor(t, "net/http to drop the connection", 5*time.Second, func() bool {
							return up.eofs.Load() > int64(i)
						})
					}
				}
				if got := up.requests.Load(); got != 30 {
					t.Errorf("upstream got %d requests, want 30", got)
				}
				h.checkFast(path)
			})
		})
	}
}

const timeout408 = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

// TestUpstream408OnIdleClose: an upstream that closes an idle keep-alive
// connection after writing a 408 (nginx, Apache and Node on their
// keep-alive timeout) never turns the next request into that 408, whether
// the 408 arrived before the request or answers it: a request the upstream
// never processed goes again on a new connection, whatever its method.
func TestUpstream408OnIdleClose(t *testing.T) {
	requests := []string{
		"GET /next HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n",
		"POST /next HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: 4\r\n\r\nbody",
	}
	t.Run("while idle", func(t *testing.T) {
		for _, raw := range requests {
			method, _, _ := strings.Cut(raw, " ")
			t.Run(method, func(t *testing.T) {
				expire := make(chan struct{})
				up := newWireUpstream(t, func(c net.Conn, r *http.Request, n int64) bool {
					if _, err := io.WriteString(c, pathResponse(r)); err != nil || n > 1 {
						return err == nil
					}
					<-expire // the keep-alive timeout
					_, _ = io.WriteString(c, timeout408)
					return false
				})
				h := newHarness(t, cannedConfig(up.URL), fastPath)
				c := dialRaw(t, h.addr)
				if resp, body := c.get(testHost, "/first"); resp.StatusCode != 200 || body != "/first" {
					t.Fatalf("first: got %d %q", resp.StatusCode, body)
				}
				close(expire)
				waitFor(t, "the upstream to close", 5*time.Second, func() bool { return up.closed.Load() == 1 })
				if resp, body := c.do(method, raw); resp.StatusCode != 200 || body != "/next" {
					t.Fatalf("after the 408: got %d %q, want 200 /next", resp.StatusCode, body)
				}
				if n := h.rep.count(0, 0, health.Outcome5xx); n != 0 {
					t.Errorf("got %d failures reported against the endpoint, want 0", n)
				}
			})
		}
	})
	t.Run("answering the request", func(t *testing.T) {
		for _, raw := range requests {
			method, _, _ := strings.Cut(raw, " ")
			t.Run(method, func(t *testing.T) {
				// The second request on a connection meets the 408 that
				// was on its way.
				var perConn sync.Map
				up := newWireUpstream(t, func(c net.Conn, r *http.Request, _ int64) bool {
					v, _ := perConn.LoadOrStore(c, new(atomic.Int64))
					if v.(*atomic.Int64).Add(1) == 2 {
						_, _ = io.WriteString(c, timeout408)
						return false
					}
					_, err := io.WriteString(c, pathResponse(r))
					return err == nil
				})
				h := newHarness(t, cannedConfig(up.URL), fastPath)
				c := dialRaw(t, h.addr)
				if resp, body := c.get(testHost, "/first"); resp.StatusCode != 200 || body != "/first" {
					t.Fatalf("first: got %d %q", resp.StatusCode, body)
				}
				if resp, body := c.do(method, raw); resp.StatusCode != 200 || body != "/next" {
					t.Fatalf("after the 408: got %d %q, want 200 /next", resp.StatusCode, body)
				}
				if got := up.conns.Load(); got != 2 {
					t.Errorf("upstream got %d connections, want 2", got)
				}
				if n := h.rep.count(0, 0, health.Outcome5xx); n != 0 {
					t.Errorf("got %d failures reported against the endpoint, want 0", n)
				}
			})
		}
	})
}

// TestUpstreamFramingChecked: response framing is checked as strictly as
// net/http checks it. A head net/http refuses is a 502 for the client, with
// the upstream connection closed and the failure reported against the
// endpoint; a body that goes wrong ends the client's connection without
// one malformed byte reaching it; what net/http tolerates (bare-LF line
// ends, folded fields) is answered as net/http answers it, at once and
// with no report against the endpoint.
func TestUpstreamFramingChecked(t *testing.T) {
	const te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name, answer string
		status       int    // 0: the body is cut
		body         string // what the client gets (of a cut body, before the cut; "": no response at all)
		header       map[string]string
	}{
		{name: "bare-LF head", answer: "HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok", status: 200, body: "ok",
			header: map[string]string{"X-A": "1"}},
		{name: "bare-LF end of head", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok", status: 200, body: "ok"},
		{name: "folded field", answer: "HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok",
			header: map[string]string{"X-A": "a b"}},
		{name: "folded Transfer-Encoding", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			status: 200, body: "ok"},
		{name: "chunked wins over Content-Length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			status: 200, body: "ok"},
		{name: "chunk extension dropped", answer: te + "2;a=b \r\nok\r\n0\r\n\r\n", status: 200, body: "ok"},
		{name: "fold onto the status line", answer: "HTTP/1.1 200 OK\r\n X-A: a\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "bare CR in a field", answer: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "control byte in a field", answer: "HTTP/1.1 200 OK\r\nX-A: \x01\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "two Content-Lengths", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", status: 502},
		{name: "Content-Length repeated in another spelling", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\nok", status: 502},
		{name: "signed Content-Length", answer: "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", status: 502},
		{name: "two Transfer-Encodings", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 502},
		{name: "unknown transfer coding", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 502},
		{name: "no colon", answer: "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "bare-LF chunk size", answer: te + "2\nok\r\n0\r\n\r\n"},
		{name: "CR in a chunk extension", answer: te + "2;a=\rb\r\nok\r\n0\r\n\r\n"},
		{name: "space before the size", answer: te + " 2\r\nok\r\n0\r\n\r\n"},
		{name: "space before an extension", answer: te + "2 ;a\r\nok\r\n0\r\n\r\n"},
		{name: "hex prefix", answer: te + "0x2\r\nok\r\n0\r\n\r\n"},
		{name: "size too long", answer: te + "00000000000000002\r\nok\r\n0\r\n\r\n"},
		{name: "no CRLF after the data", answer: te + "2\r\nok\n0\r\n\r\n", body: "ok"},
		{name: "bare-LF last chunk", answer: te + "2\r\nok\r\n0\n\r\n", body: "ok"},
		{name: "malformed trailer", answer: te + "2\r\nok\r\n0\r\nX-T 1\r\n\r\n", body: "ok"},
		{name: "bare-LF trailer", answer: te + "2\r\nok\r\n0\r\nX-T: 1\n\r\n", body: "ok"},
		{name: "too much chunk overhead", answer: te + strings.Repeat("1;"+strings.Repeat("e", 200)+"\r\nx\r\n", 100) + "0\r\n\r\n",
			body: strings.Repeat("x", 88)}, // as far as net/http's reader goes
		{name: "body shorter than Content-Length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newWireUpstream(t, func(c net.Conn, r *http.Request, _ int64) bool {
				_, _ = io.WriteString(c, tc.answer)
				if tc.status == 0 && strings.HasSuffix(tc.name, "Content-Length") {
					return false // the upstream ends the body early
				}
				return true // the proxy decides whether the connection goes on
			})
			h := newHarness(t, cannedConfig(up.URL), fastPath)
			c := dialRaw(t, h.addr)
			start := time.Now()
			c.send("GET / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
			resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
			if err != nil && tc.status == 0 && tc.body == "" {
				// Broken before any of the body was relayed: the client
				// gets nothing, as from net/http's path.
				if !c.closed(5 * time.Second) {
					t.Error("the client connection stays open after a broken body")
				}
				waitFor(t, "the upstream connection to close", 5*time.Second, func() bool { return up.closed.Load() == 1 })
				return
			}
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("answered after %v, want at once", d)
			}
			failures := h.rep.count(0, 0, health.Outcome5xx) + h.rep.count(0, 0, health.OutcomeTimeout)
			switch {
			case tc.status == 0:
				if err == nil || string(body) != tc.body {
					t.Errorf("got body %q (err %v), want %q cut short", body, err, tc.body)
				}
				if !c.closed(5 * time.Second) {
					t.Error("the client connection stays open after a broken body")
				}
			case resp.StatusCode != tc.status || tc.status == 200 && string(body) != tc.body:
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			case tc.status == 200 && failures != 0:
				t.Errorf("got %d failures reported against the endpoint, want 0", failures)
			case tc.status == 502 && h.rep.count(0, 0, health.Outcome5xx) != 1:
				t.Errorf("got %d failures reported against the endpoint, want 1", h.rep.count(0, 0, health.Outcome5xx))
			}
			for k, want := range tc.header {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("got %s %q, want %q", k, got, want)
				}
			}
			if tc.status != 200 {
				waitFor(t, "the upstream connection to close", 5*time.Second, func() bool { return up.closed.Load() == 1 })
			}
		})
	}
}

// TestRequestFramingRefused: a request whose framing a front end could
// read another way (Content-Length with Transfer-Encoding, folded or not,
// small or large; Transfer-Encoding in HTTP/1.0; an absolute-form target
// naming another host than Host) is answered 400 with Connection: close,
// the connection closes, and nothing reaches the upstream. A bare-LF
// request head is answered at once.
func TestRequestFramingRefused(t *testing.T) {
	h := "Host: " + testHost + "\r\n"
	smuggled := "0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + h + "\r\n"
	tests := []struct{ name, raw string }{
		{"CL.TE", "POST / HTTP/1.1\r\n" + h + "Content-Length: " + strconv.Itoa(len(smuggled)) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
		{"TE.CL", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + smuggled},
		{"folded TE", "POST / HTTP/1.1\r\n" + h + "Content-Length: " + strconv.Itoa(len(smuggled)) +
			"\r\nTransfer-Encoding:\r\n chunked\r\n\r\n" + smuggled},
		{"bare-LF CL.TE", "POST / HTTP/1.1\n" + "Host: " + testHost + "\nContent-Length: 5\nTransfer-Encoding: chunked\n\n" + smuggled},
		{"large body", "POST / HTTP/1.1\r\n" + h + "Content-Length: 100000000\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
		{"HTTP/1.0 with TE", "POST / HTTP/1.0\r\n" + h + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"},
		{"HTTP/1.0 with TE alone", "POST / HTTP/1.0\r\n" + h + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"absolute form, other host", "GET http://other.example.com/x HTTP/1.1\r\n" + h + "\r\n"},
	}
	up := newCannedUpstream(t, always(okResponse))
	hs := newHarness(t, cannedConfig(up.URL), fastPath)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, hs.addr)
			resp, body := c.do(http.MethodPost, tc.raw)
			if resp.StatusCode != 400 || !resp.Close {
				t.Errorf("got %d (close %v) %q, want 400 with Connection: close", resp.StatusCode, resp.Close, body)
			}
			if !c.closed(5 * time.Second) {
				t.Error("the connection stays open")
			}
		})
	}
	if n := up.requests.Load(); n != 0 {
		t.Errorf("upstream got %d requests, want 0", n)
	}
	t.Run("bare-LF head", func(t *testing.T) {
		c := dialRaw(t, hs.addr)
		start := time.Now()
		resp, body := c.do(http.MethodGet, "GET / HTTP/1.1\nHost: "+testHost+"\n\n")
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("got %d %q, want 200 ok", resp.StatusCode, body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("answered after %v, want at once", d)
		}
	})
	t.Run("absolute form, same host", func(t *testing.T) {
		c := dialRaw(t, hs.addr)
		if resp, body := c.do(http.MethodGet, "GET http://"+testHost+"/x HTTP/1.1\r\n"+h+"\r\n"); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("got %d %q, want 200 ok", resp.StatusCode, body)
		}
	})
}

// TestPlainHTTPOnTLSPort: plain HTTP sent to a TLS listener gets net/http's
// 400, not an empty reply.
func TestPlainHTTPOnTLSPort(t *testing.T) {
	up := newCannedUpstream(t, always(okResponse))
	ln, tlsOn, _ := tlsListener(t)
	hs := newHarness(t, cannedConfig(up.URL), fastPath, ln, tlsOn)
	c := dialRaw(t, hs.addr)
	c.send("GET / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	got, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.0 400 Bad Request\r\n") {
		t.Errorf("got %q, want a 400", got)
	}
}
