package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
)

// TestPlainH2Timeout: an upstream that does not answer within
// proxy.timeout gets the HTTP/2 client 504 from its region, and is
// reported as a timeout.
func TestPlainH2Timeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	cfg := cannedConfig(up.URL)
	cfg.Services[0].Proxy.Timeout = config.Duration(600 * time.Millisecond)
	hh := newH2Harness(t, cfg, h2C)
	start := time.Now()
	resp, body := hh.get(testHost, "/")
	if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("X-Meridian-Region") != "eu" {
		t.Fatalf("got %d %q from %q, want 504 from eu", resp.StatusCode, body, resp.Header.Get("X-Meridian-Region"))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v, want about the 600ms timeout", took)
	}
	if hh.rep.count(0, 0, health.OutcomeTimeout) == 0 {
		t.Error("no timeout reported")
	}
}

// TestPlainH2EventStream: an event stream reaches the HTTP/2 client as
// the upstream writes it, before the upstream is done.
func TestPlainH2EventStream(t *testing.T) {
	next := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			_, _ = io.WriteString(w, "data: "+strings.Repeat("x", i+1)+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(10 * time.Second):
				return
			}
		}
	})
	hh := newH2Harness(t, cannedConfig(up.URL), h2C)
	resp, err := hh.h2.Do(hh.request(http.MethodGet, testHost, "/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if want := "data: " + strings.Repeat("x", i+1) + "\n"; err != nil || line != want {
			t.Fatalf("event %d: got %q, %v, want %q", i, line, err, want)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		next <- struct{}{} // the upstream writes the next one only now
	}
	if hh.fastIdle() != 0 {
		t.Error("a stream's connection was pooled while it runs")
	}
}

// TestPlainH2Head: a HEAD request gets the upstream's Content-Length and
// no body, and the upstream connection is reused.
func TestPlainH2Head(t *testing.T) {
	up := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n"))
	hh := newH2Harness(t, cannedConfig(up.URL), h2C)
	for range 2 {
		resp, body := hh.do(hh.request(http.MethodHead, testHost, "/", nil))
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != 1234 {
			t.Fatalf("got %d with %q, length %d, want 200, none, 1234", resp.StatusCode, body, resp.ContentLength)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections, want 1", n)
	}
}

// TestPlainH2AccessLog: an HTTP/2 request served by ServePlain writes its
// access log line.
func TestPlainH2AccessLog(t *testing.T) {
	up := newCannedUpstream(t, always("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
	hh := newH2Harness(t, cannedConfig(up.URL), h2C)
	out := &lockedBuffer{}
	al := NewAccessLog(out, quietLogger())
	hh.p.SetAccessLog(al)
	defer al.Close()
	if resp, _ := hh.get(testHost, "/logged"); resp.StatusCode != 201 {
		t.Fatalf("got %d, want 201", resp.StatusCode)
	}
	waitFor(t, "an access log line", 5*time.Second, func() bool { return len(out.lines(t)) == 1 })
	line := out.lines(t)[0]
	if line["service"] != "api" || line["region"] != "eu" || line["status"] != float64(201) {
		t.Errorf("got line %v, want service api, region eu, status 201", line)
	}
}

// TestServePlainRefuses: ServePlain leaves to the caller, having written
// nothing, requests it must not put on an HTTP/1.1 wire as they are.
func TestServePlainRefuses(t *testing.T) {
	up := newCannedUpstream(t, always("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	base := func() *PlainRequest {
		return &PlainRequest{
			Method: []byte("GET"), Target: []byte("/"), Authority: []byte(testHost),
			Header: &benchFields{}, Peer: netip.MustParseAddr("127.0.0.1"),
		}
	}
	for _, tc := range []struct {
		name string
		edit func(rq *PlainRequest)
	}{
		{"value with CRLF", func(rq *PlainRequest) {
			rq.Header = &benchFields{f: [][2][]byte{{[]byte("x-a"), []byte("1\r\nX-Injected: 1")}}}
		}},
		{"value with NUL", func(rq *PlainRequest) { rq.Header = &benchFields{f: [][2][]byte{{[]byte("x-a"), []byte("a\x00")}}} }},
		{"name with space", func(rq *PlainRequest) { rq.Header = &benchFields{f: [][2][]byte{{[]byte("x a"), []byte("1")}}} }},
		{"empty name", func(rq *PlainRequest) { rq.Header = &benchFields{f: [][2][]byte{{nil, []byte("1")}}} }},
		{"connection field", func(rq *PlainRequest) {
			rq.Header = &benchFields{f: [][2][]byte{{[]byte("connection"), []byte("close")}}}
		}},
		{"te other than trailers", func(rq *PlainRequest) { rq.Header = &benchFields{f: [][2][]byte{{[]byte("te"), []byte("gzip")}}} }},
		{"grpc", func(rq *PlainRequest) {
			rq.Header = &benchFields{f: [][2][]byte{{[]byte("content-type"), []byte("application/grpc+proto")}}}
		}},
		{"connect", func(rq *PlainRequest) { rq.Method = []byte("CONNECT") }},
		{"method with space", func(rq *PlainRequest) { rq.Method = []byte("GET /x") }},
		{"absolute target", func(rq *PlainRequest) { rq.Target = []byte("http://x/") }},
		{"target with space", func(rq *PlainRequest) { rq.Target = []byte("/a b") }},
		{"bad authority", func(rq *PlainRequest) { rq.Authority = []byte("a b") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rq := base()
			tc.edit(rq)
			sink := &benchSink{}
			if h.p.ServePlain(rq, sink) {
				t.Fatalf("ServePlain took it and answered %d", sink.code)
			}
			if sink.code != 0 || sink.n != 0 {
				t.Errorf("ServePlain wrote %d with %d bytes", sink.code, sink.n)
			}
		})
	}
	if n := up.requests.Load(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
	// HTTP/2's split cookie fields are joined for HTTP/1.1 (RFC 9113
	// section 8.2.3), and lower-case names go upstream in canonical form.
	rq := base()
	rq.Header = &benchFields{f: [][2][]byte{
		{[]byte("cookie"), []byte("a=1")}, {[]byte("x-trace-id"), []byte("t")}, {[]byte("cookie"), []byte("b=2")},
	}}
	sink := &benchSink{}
	if !h.p.ServePlain(rq, sink) || sink.code != 200 || sink.n != 2 {
		t.Fatalf("the plain request: got %d with %d bytes, want 200 with 2", sink.code, sink.n)
	}
	r, _ := up.lastRequest()
	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "a=1; b=2" {
		t.Errorf("upstream got Cookie %q, want [a=1; b=2]", got)
	}
	if got := r.Header["X-Trace-Id"]; len(got) != 1 || got[0] != "t" {
		t.Errorf("upstream got X-Trace-Id %q, want [t]", got)
	}
}

// TestPlainH2BodyRetries: max_retry_body decides what may be retried. A
// body that fits is replayed after a connect failure and after a retry_on
// status; a larger one, streamed, is retried after a connect failure (it
// never left) but not after a status: the client gets that answer.
func TestPlainH2BodyRetries(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Len", strconv.Itoa(len(b)))
		_, _ = w.Write(b[:min(len(b), 16)])
	}
	small := strings.Repeat("s", 1000)
	large := strings.Repeat("L", 200<<10) // beyond the 64 KiB max_retry_body
	unknown := func(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

	t.Run("connect failure", func(t *testing.T) {
		us := upstream(t, echo)
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", deadURL(t)), testRegion("us", us.URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu", "us")},
		}
		hh := newH2Harness(t, cfg, h2C)
		for _, body := range []string{small, large} {
			resp, _ := hh.do(hh.request(http.MethodPost, testHost, "/", unknown(body)))
			if resp.StatusCode != 200 || resp.Header.Get("X-Meridian-Region") != "us" || resp.Header.Get("X-Len") != strconv.Itoa(len(body)) {
				t.Errorf("%d-byte POST: got %d from %q with %s bytes upstream, want 200 from us with all",
					len(body), resp.StatusCode, resp.Header.Get("X-Meridian-Region"), resp.Header.Get("X-Len"))
			}
		}
	})
	t.Run("retry_on status", func(t *testing.T) {
		var busyLen atomic.Int64
		busy := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			busyLen.Store(n)
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		us := upstream(t, echo)
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", busy.URL), testRegion("us", us.URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu", "us")},
		}
		hh := newH2Harness(t, cfg, h2C)
		resp, _ := hh.do(hh.request(http.MethodPut, testHost, "/", unknown(small)))
		if resp.StatusCode != 200 || resp.Header.Get("X-Len") != strconv.Itoa(len(small)) {
			t.Errorf("small PUT: got %d with %s bytes upstream, want 200 with %d replayed", resp.StatusCode, resp.Header.Get("X-Len"), len(small))
		}
		resp, _ = hh.do(hh.request(http.MethodPut, testHost, "/", unknown(large)))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Meridian-Region") != "eu" {
			t.Errorf("large PUT: got %d from %q, want eu's 503 (a streamed body is not replayed)", resp.StatusCode, resp.Header.Get("X-Meridian-Region"))
		}
		if n := busyLen.Load(); n != int64(len(large)) {
			t.Errorf("eu read %d bytes of the large body, want %d", n, len(large))
		}
	})
}
