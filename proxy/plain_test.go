package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
)

// TestPlainH2FastUpstream: HTTP/2 requests of a plain service reach the
// upstream over one pooled keep-alive HTTP/1.1 connection of the fast
// path, not through ReverseProxy and http.Transport (which would leave
// the fast pools empty).
func TestPlainH2FastUpstream(t *testing.T) {
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		up := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"))
		hh := newH2Harness(t, cannedConfig(up.URL), mode)
		for i := range 10 {
			resp, body := hh.get(testHost, "/n/"+strconv.Itoa(i))
			if resp.StatusCode != 200 || body != "hello" {
				t.Fatalf("request %d: got %d %q, want 200 hello", i, resp.StatusCode, body)
			}
			if got := resp.Header.Get("X-Meridian-Region"); got != "eu" {
				t.Errorf("got X-Meridian-Region %q, want eu", got)
			}
			if resp.ContentLength != 5 {
				t.Errorf("got Content-Length %d, want 5", resp.ContentLength)
			}
		}
		if n := up.conns.Load(); n != 1 {
			t.Errorf("upstream saw %d connections, want 1 (pooled)", n)
		}
		if n := up.requests.Load(); n != 10 {
			t.Errorf("upstream saw %d requests, want 10", n)
		}
		if n := hh.fastIdle(); n != 1 {
			t.Errorf("fast upstream pools hold %d idle connections, want 1", n)
		}
		last, _ := up.lastRequest()
		if last.URL.Path != "/n/9" || last.Proto != "HTTP/1.1" {
			t.Errorf("upstream got %s %s, want /n/9 over HTTP/1.1", last.URL.Path, last.Proto)
		}
		if got := testutilCount(t, hh.harness, "api", "eu", "200"); got != 10 {
			t.Errorf("requests counted with 200: %v, want 10", got)
		}
	})
}

// TestPlainH2Headers: forwarding fields are set as on the other paths,
// hop-by-hop fields of the response are stripped, the region is set, and
// split cookies are joined for the HTTP/1.1 upstream.
func TestPlainH2Headers(t *testing.T) {
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		up := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: secret\r\n"+
			"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Meridian-Region: spoofed\r\nX-Kept: a\r\nX-Kept: b\r\n"+
			"Content-Length: 2\r\n\r\nok"))
		hh := newH2Harness(t, cannedConfig(up.URL), mode)
		req := hh.request(http.MethodGet, testHost, "/p?q=1", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("Forwarded", "for=203.0.113.9")
		req.Header.Set("X-Custom", "v")
		req.Header.Set("Te", "trailers")
		req.Header.Set("User-Agent", "h2-test")
		req.Header.Set("Cookie", "a=1; b=2") // split into two fields on the wire
		resp, body := hh.do(req)
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
		}
		for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Authenticate"} {
			if v := resp.Header.Get(k); v != "" {
				t.Errorf("client got hop-by-hop %s: %q", k, v)
			}
		}
		if got := resp.Header.Values("X-Meridian-Region"); len(got) != 1 || got[0] != "eu" {
			t.Errorf("got X-Meridian-Region %q, want [eu]", got)
		}
		if got := resp.Header.Values("X-Kept"); strings.Join(got, ",") != "a,b" {
			t.Errorf("got X-Kept %q, want [a b]", got)
		}
		if resp.Header.Get("Date") == "" {
			t.Error("no Date")
		}
		r, _ := up.lastRequest()
		proto := "http"
		if mode == h2TLS {
			proto = "https"
		}
		want := map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Host":  testHost,
			"X-Forwarded-Proto": proto,
			"Forwarded":         "for=127.0.0.1;host=" + testHost + ";proto=" + proto,
			"X-Custom":          "v",
			"Te":                "trailers",
			"User-Agent":        "h2-test",
			"Cookie":            "a=1; b=2",
		}
		for k, v := range want {
			if got := strings.Join(r.Header.Values(k), "|"); got != v {
				t.Errorf("upstream got %s %q, want %q", k, got, v)
			}
		}
		if r.Host != testHost || r.URL.RequestURI() != "/p?q=1" {
			t.Errorf("upstream got Host %q target %q, want %q /p?q=1", r.Host, r.URL.RequestURI(), testHost)
		}
	})
}

// TestPlainH2Bodies: request bodies of known and unknown length, small
// and larger than max_retry_body, reach the upstream intact, framed as
// the rules say; a large response body comes back intact.
func TestPlainH2Bodies(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		hash := sha256.New()
		n, err := io.Copy(hash, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Len", strconv.FormatInt(n, 10))
		w.Header().Set("X-Sum", hex.EncodeToString(hash.Sum(nil)))
		w.Header().Set("X-CL", strconv.FormatInt(r.ContentLength, 10))
		w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
		if sz := r.URL.Query().Get("reply"); sz != "" {
			k, _ := strconv.Atoi(sz)
			_, _ = w.Write(bytes.Repeat([]byte("r"), k))
		}
	})
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		hh := newH2Harness(t, cannedConfig(up.URL), mode)
		small := bytes.Repeat([]byte("0123456789"), 1000)  // 10 KB: within max_retry_body
		large := bytes.Repeat([]byte("abcdefghij"), 300e3) // 3 MB: beyond it
		for _, tc := range []struct {
			name    string
			body    []byte
			unknown bool
			wantCL  string
			wantTE  string
		}{
			{"small known", small, false, "10000", ""},
			{"small unknown", small, true, "10000", ""},
			{"large known", large, false, "3000000", ""},
			{"large unknown", large, true, "-1", "chunked"},
			{"empty post", nil, false, "0", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var rd io.Reader = bytes.NewReader(tc.body)
				if tc.unknown {
					rd = io.MultiReader(rd) // hides the length
				}
				req := hh.request(http.MethodPost, testHost, "/upload", rd)
				if tc.body == nil {
					req.Body, req.ContentLength = http.NoBody, 0
				}
				resp, _ := hh.do(req)
				sum := sha256.Sum256(tc.body)
				if resp.StatusCode != 200 || resp.Header.Get("X-Len") != strconv.Itoa(len(tc.body)) ||
					resp.Header.Get("X-Sum") != hex.EncodeToString(sum[:]) {
					t.Fatalf("got %d, upstream read %s bytes, want 200 and %d intact", resp.StatusCode, resp.Header.Get("X-Len"), len(tc.body))
				}
				if got := resp.Header.Get("X-CL"); got != tc.wantCL {
					t.Errorf("upstream saw Content-Length %s, want %s", got, tc.wantCL)
				}
				if got := resp.Header.Get("X-TE"); got != tc.wantTE {
					t.Errorf("upstream saw Transfer-Encoding %q, want %q", got, tc.wantTE)
				}
			})
		}
		t.Run("large response", func(t *testing.T) {
			resp, body := hh.get(testHost, "/down?reply=5000000")
			if resp.StatusCode != 200 || len(body) != 5e6 || strings.Trim(body, "r") != "" {
				t.Fatalf("got %d with %d bytes, want 200 and 5000000", resp.StatusCode, len(body))
			}
		})
		if n := hh.fastIdle(); n == 0 {
			t.Error("no fast upstream connection pooled: the requests did not take the fast upstream path")
		}
	})
}

// TestPlainH2Failover: an endpoint that refuses connections, one that
// dies after serving, and a region without a live endpoint are retried
// and failed over as SPEC section 5 says, with passive health reports.
func TestPlainH2Failover(t *testing.T) {
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		var euHits atomic.Int64
		eu := upstream(t, func(w http.ResponseWriter, _ *http.Request) {
			euHits.Add(1)
			_, _ = io.WriteString(w, "eu")
		})
		us := upstream(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "us") })
		cfg := &config.Config{
			Regions: []config.Region{testRegion("eu", deadURL(t), eu.URL), testRegion("us", us.URL)},
			Services: []config.Service{
				proxyService("api", []string{testHost}, "eu", "us"),
			},
		}
		hh := newH2Harness(t, cfg, mode)
		// Random choice between the two eu endpoints: within 40 requests
		// the dead one is all but certainly tried (a miss is 2^-40).
		for i := 0; i < 40 && hh.rep.count(0, 0, health.OutcomeConnectFailure) == 0; i++ {
			resp, body := hh.get(testHost, "/")
			if resp.StatusCode != 200 || body != "eu" || resp.Header.Get("X-Meridian-Region") != "eu" {
				t.Fatalf("request %d: got %d %q from %q, want 200 eu", i, resp.StatusCode, body, resp.Header.Get("X-Meridian-Region"))
			}
		}
		if hh.rep.count(0, 0, health.OutcomeConnectFailure) == 0 {
			t.Fatal("no connect failure reported for the dead endpoint")
		}
		if hh.rep.count(0, 1, health.OutcomeSuccess) == 0 {
			t.Error("no success reported for the live endpoint")
		}
		eu.Close() // the live eu endpoint dies: its pooled connection too
		resp, body := hh.get(testHost, "/")
		if resp.StatusCode != 200 || body != "us" || resp.Header.Get("X-Meridian-Region") != "us" {
			t.Fatalf("after eu died: got %d %q from %q, want 200 us", resp.StatusCode, body, resp.Header.Get("X-Meridian-Region"))
		}
		if got := testutilFailovers(t, hh.harness, "api", "eu", "us"); got < 1 {
			t.Errorf("failovers counted: %v, want at least 1", got)
		}
	})
}

// TestPlainH2RetryStatus: a retry_on status from one endpoint is retried
// on the next, and the client gets the second answer.
func TestPlainH2RetryStatus(t *testing.T) {
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		bad := newCannedUpstream(t, always("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"))
		good := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"))
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", bad.URL), testRegion("us", good.URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu", "us")},
		}
		hh := newH2Harness(t, cfg, mode)
		resp, body := hh.get(testHost, "/")
		if resp.StatusCode != 200 || body != "good" {
			t.Fatalf("got %d %q, want 200 good", resp.StatusCode, body)
		}
		if bad.requests.Load() != 1 || good.requests.Load() != 1 {
			t.Errorf("upstreams saw %d and %d requests, want 1 each", bad.requests.Load(), good.requests.Load())
		}
		// A POST is not idempotent: the 503 is the client's answer.
		resp, body = hh.do(hh.request(http.MethodPost, testHost, "/", strings.NewReader("x")))
		if resp.StatusCode != 503 || body != "busy" {
			t.Fatalf("POST: got %d %q, want 503 busy", resp.StatusCode, body)
		}
	})
}

// TestPlainH2Misbehaving: responses the fast path refuses get 502 over
// HTTP/2 as over HTTP/1.1; a body that breaks off resets the stream (an
// HTTP/1.1 client sees the connection close); stray bytes after a
// response close its upstream connection.
func TestPlainH2Misbehaving(t *testing.T) {
	up := newCannedUpstream(t, byPath(map[string]string{
		"/garbage":   "garbage\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/two-cl":    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"/bad-te":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/bad-chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
		"/chunked":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2;ext=1\r\nok\r\n3\r\n!!!\r\n0\r\nX-T: done\r\n\r\n",
	}))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		hh := newH2Harness(t, cannedConfig(up.URL), mode)
		for _, path := range []string{"/garbage", "/two-cl", "/bad-te"} {
			resp, _ := hh.get(testHost, path)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("%s over HTTP/2: got %d, want 502", path, resp.StatusCode)
			}
			c := dialRaw(t, hh.addr)
			if mode == h2C { // the same over HTTP/1.1 on the fast path
				if r, _ := c.get(testHost, path); r.StatusCode != http.StatusBadGateway {
					t.Errorf("%s over HTTP/1.1: got %d, want 502", path, r.StatusCode)
				}
			}
		}
		t.Run("bad chunk", func(t *testing.T) {
			resp, err := hh.h2.Do(hh.request(http.MethodGet, testHost, "/bad-chunk", nil))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatal("a broken chunked body reached the client as complete")
			}
		})
		t.Run("chunked with trailers", func(t *testing.T) {
			resp, body := hh.get(testHost, "/chunked")
			if resp.StatusCode != 200 || body != "ok!!!" {
				t.Fatalf("got %d %q, want 200 ok!!!", resp.StatusCode, body)
			}
			if got := resp.Trailer.Get("X-T"); got != "done" {
				t.Errorf("got trailer X-T %q, want done", got)
			}
		})
		t.Run("stray bytes", func(t *testing.T) {
			up := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n"))
			hh := newH2Harness(t, cannedConfig(up.URL), mode)
			for range 2 {
				resp, body := hh.get(testHost, "/")
				if resp.StatusCode != 200 || body != "ok" {
					t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
				}
			}
			if n := up.conns.Load(); n != 2 {
				t.Errorf("upstream saw %d new connections, want 2 (none reused after stray bytes)", n)
			}
		})
	})
}

// TestPlainH2ClientCancel: a client that resets its stream mid-response,
// or while the upstream has yet to answer, ends the upstream exchange:
// the upstream connection is closed, not left streaming.
func TestPlainH2ClientCancel(t *testing.T) {
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		var ended, waitEnded atomic.Bool
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/wait" {
				<-r.Context().Done() // the proxy closed the connection
				waitEnded.Store(true)
				return
			}
			defer ended.Store(true)
			for i := 0; i < 400; i++ { // bounded: 20 s at most
				if _, err := fmt.Fprintf(w, "chunk %d\n", i); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
		})
		hh := newH2Harness(t, cannedConfig(up.URL), mode)

		ctx, cancel := context.WithCancel(context.Background())
		resp, err := hh.h2.Do(hh.request(http.MethodGet, testHost, "/stream", nil).WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "chunk 0\n" {
			t.Fatalf("got %q, %v, want the first chunk", buf, err)
		}
		cancel()
		resp.Body.Close()
		waitFor(t, "the upstream stream to end", 10*time.Second, ended.Load)

		ctx, cancel = context.WithCancel(context.Background())
		defer cancel()
		go func() {
			time.Sleep(200 * time.Millisecond)
			cancel()
		}()
		if resp, err := hh.h2.Do(hh.request(http.MethodGet, testHost, "/wait", nil).WithContext(ctx)); err == nil {
			resp.Body.Close()
			t.Fatal("a cancelled request got a response")
		}
		waitFor(t, "the upstream wait to end", 10*time.Second, waitEnded.Load)
		waitFor(t, "the request to be counted as 499", 10*time.Second, func() bool {
			return testutilCount(t, hh.harness, "api", "eu", "499") == 1
		})
	})
}

// TestPlainH2NotTaken: what ServePlain does not take stays with
// ReverseProxy: a service with an https endpoint, and sticky cookies.
func TestPlainH2NotTaken(t *testing.T) {
	up := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	cfg := cannedConfig(up.URL)
	cfg.Services[0].Proxy.Sticky = "cookie"
	hh := newH2Harness(t, cfg, h2C)
	resp, body := hh.get(testHost, "/")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
	}
	if n := hh.fastIdle(); n != 0 {
		t.Errorf("fast pools hold %d connections, want 0 (ReverseProxy serves sticky cookies)", n)
	}
	if resp.Header.Get("Set-Cookie") == "" {
		t.Error("no sticky cookie set")
	}
}

// TestPlainUnknownHost: a Host no service owns gets 421 from ServePlain.
func TestPlainUnknownHost(t *testing.T) {
	up := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	hh := newH2Harness(t, cannedConfig(up.URL), h2C)
	resp, body := hh.get("nobody.example.net", "/")
	if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(body, "nobody.example.net") {
		t.Fatalf("got %d %q, want 421 naming the host", resp.StatusCode, body)
	}
}

// testutilCount is the requests counted for service, region and code.
func testutilCount(t *testing.T, h *harness, service, region, code string) float64 {
	t.Helper()
	return testutil.ToFloat64(h.p.met.requests.WithLabelValues(service, region, code))
}

// testutilFailovers is the failovers counted from one region to another.
func testutilFailovers(t *testing.T, h *harness, service, from, to string) float64 {
	t.Helper()
	return testutil.ToFloat64(h.p.met.failovers.WithLabelValues(service, from, to))
}
