package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/policy"
)

// lockedBuffer is an io.WriteCloser safe for the flusher and the test.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	closed bool
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errors.New("write after close")
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAccessLog proxies requests on both paths with the access log on: a
// request that fails over from a dead region, one that a healthy region
// answers with 503, and one for a service with no endpoint at all. Each
// writes one line with what happened.
func TestAccessLog(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		ok := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/busy" {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		})
		cfg := &config.Config{
			Regions: []config.Region{testRegion("dead", deadURL(t)), testRegion("live", ok.URL)},
			Services: []config.Service{
				proxyService("web", []string{testHost}, "dead", "live"),
			},
		}
		cfg.Services[0].Proxy.RetryOn = []string{"connect-failure"} // a 503 is passed on
		h := newHarness(t, cfg, path)
		out := &lockedBuffer{}
		al := NewAccessLog(out, quietLogger())
		h.p.SetAccessLog(al)

		start := time.Now()
		if r, body := h.get(testHost, "/x"); r.StatusCode != http.StatusOK {
			t.Fatalf("failover request: %d %q", r.StatusCode, body)
		}
		if r, _ := h.get(testHost, "/busy"); r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("busy request: %d", r.StatusCode)
		}
		h.checkFast(path)
		// Lines reach the output within FlushInterval, without Close.
		waitFor(t, "two access log lines", 5*time.Second, func() bool { return len(out.lines(t)) == 2 })
		h.p.SetAccessLog(nil)
		if r, _ := h.get(testHost, "/off"); r.StatusCode != http.StatusOK {
			t.Fatalf("request with the log off: %d", r.StatusCode)
		}
		al.Close()
		if !out.closed {
			t.Error("Close did not close the output")
		}
		lines := out.lines(t)
		if len(lines) != 2 {
			t.Fatalf("got %d lines, want 2 (none once the log is off):\n%v", len(lines), lines)
		}
		liveHost := strings.TrimPrefix(ok.URL, "http://")
		for i, want := range []map[string]any{
			{"service": "web", "region": "live", "endpoint": liveHost, "status": 200.0, "attempts": 2.0, "retries": 1.0, "fail_open": false, "client": "127.0.0.1"},
			{"service": "web", "region": "live", "endpoint": liveHost, "status": 503.0, "attempts": 2.0, "retries": 1.0, "fail_open": false, "client": "127.0.0.1"},
		} {
			got := lines[i]
			for k, v := range want {
				if got[k] != v {
					t.Errorf("line %d: %s = %v, want %v (line %v)", i, k, got[k], v, got)
				}
			}
			ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["time"]))
			if err != nil || ts.Before(start.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
				t.Errorf("line %d: time %v (%v), want now in RFC 3339", i, got["time"], err)
			}
			if d, ok := got["duration_seconds"].(float64); !ok || d <= 0 || d > time.Since(start).Seconds() {
				t.Errorf("line %d: duration_seconds %v, want within the test's time", i, got["duration_seconds"])
			}
		}
	})
}

// TestAccessLogNoRegion: a request no region could take is logged with
// empty region and endpoint and its status.
func TestAccessLogNoRegion(t *testing.T) {
	cfg := &config.Config{
		Regions:  []config.Region{testRegion("dead", deadURL(t))},
		Services: []config.Service{proxyService("web", []string{testHost}, "dead")},
	}
	cfg.Services[0].Dials = map[string]int{"dead": 0}
	h := newHarness(t, cfg, fastPath)
	out := &lockedBuffer{}
	al := NewAccessLog(out, quietLogger())
	h.p.SetAccessLog(al)
	r, _ := h.get(testHost, "/")
	al.Close()
	lines := out.lines(t)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1", len(lines))
	}
	if l := lines[0]; l["region"] != "" || l["endpoint"] != "" || l["status"] != float64(r.StatusCode) || r.StatusCode < 500 {
		t.Errorf("got %v (status sent %d), want no region and endpoint and the 5xx sent", l, r.StatusCode)
	}
}

func TestAccessLogReopen(t *testing.T) {
	first, second := &lockedBuffer{}, &lockedBuffer{}
	al := NewAccessLog(first, quietLogger())
	ex := testExchange()
	al.record(ex, time.Now(), time.Millisecond)
	al.Reopen(second)
	if n := len(first.lines(t)); n != 1 || !first.closed {
		t.Errorf("first output: %d lines, closed %v; want 1 line and closed", n, first.closed)
	}
	al.record(ex, time.Now(), time.Millisecond)
	al.record(ex, time.Now(), time.Millisecond)
	al.Close()
	if n := len(second.lines(t)); n != 2 || !second.closed {
		t.Errorf("second output: %d lines, closed %v; want 2 lines and closed", n, second.closed)
	}
	al.record(ex, time.Now(), time.Millisecond)
	if al.Dropped() != 1 {
		t.Errorf("a line after Close: dropped %d, want 1", al.Dropped())
	}
	al.Close() // twice is fine
}

// blockedWriter blocks every write until released: a stuck disk.
type blockedWriter struct{ release chan struct{} }

func (b *blockedWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

// TestAccessLogSlowOutput: a stuck output never holds a request; lines
// beyond the buffer bound are dropped and counted.
func TestAccessLogSlowOutput(t *testing.T) {
	w := &blockedWriter{release: make(chan struct{})}
	al := NewAccessLog(w, quietLogger())
	ex := testExchange()
	start := time.Now()
	n := 0
	for al.Dropped() == 0 && n < 1_000_000 {
		al.record(ex, time.Now(), time.Millisecond)
		n++
	}
	if al.Dropped() == 0 {
		t.Fatalf("%d lines into a stuck output, none dropped", n)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("logging into a stuck output took %v", el)
	}
	close(w.release)
	al.Close()
}

// testExchange is a finished exchange as the proxy would log it.
func testExchange() *exchange {
	r := &region{name: "eu-west"}
	ep := &endpoint{region: r}
	ep.url = mustURL("http://10.0.0.7:8080")
	return &exchange{
		svc: &service{name: "web"}, ep: ep, code: 200, attempts: 2, retries: 1,
		client: netip.MustParseAddr("81.2.69.142"), d: policy.Decision{FailOpen: true},
	}
}

// TestAccessLogRecordAllocs: writing a line allocates nothing once the
// buffer has its working size.
func TestAccessLogRecordAllocs(t *testing.T) {
	al := NewAccessLog(io.Discard, quietLogger())
	defer al.Close()
	ex := testExchange()
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { al.record(ex, now, 1500*time.Microsecond) }); n != 0 {
		t.Errorf("record: %v allocs per line, want 0", n)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "web", `a"b\c`, "tab\there\nnl", "\x00\x1f\x7f", "é中文🙂", "bad\xffutf8", "\u2028"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("%q → %s: not a JSON string: %v", s, b, err)
			continue
		}
		if want := jsonRoundTrip(t, s); got != want {
			t.Errorf("%q → %s → %q, want %q", s, b, got, want)
		}
	}
}

// jsonRoundTrip is s as encoding/json writes and reads it back: every
// byte of invalid UTF-8 becomes one U+FFFD.
func jsonRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "web", `a"b\c`, "\x00\x7f", "bad\xffutf8", "🙂", "\xff\x8c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("%q → %q: not valid JSON", s, b)
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if want := jsonRoundTrip(t, s); got != want {
			t.Fatalf("%q → %q, want %q", s, got, want)
		}
	})
}

// BenchmarkProxyRawAccessLog is BenchmarkProxyRaw's fast path with the
// access log on, writing to io.Discard.
func BenchmarkProxyRawAccessLog(b *testing.B) {
	h := newHarness(b, benchConfig(rawUpstream(b)), fastPath)
	al := NewAccessLog(io.Discard, quietLogger())
	defer al.Close()
	h.p.SetAccessLog(al)
	c := dialRaw(b, h.addr)
	c.send(benchRequest)
	var probe [4096]byte
	n, err := c.conn.Read(probe[:])
	if err != nil || !bytes.HasPrefix(probe[:n], []byte("HTTP/1.1 200 ")) {
		b.Fatalf("probe: %q %v", probe[:n], err)
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		req := []byte(benchRequest)
		buf := make([]byte, n)
		for pb.Next() {
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(conn, buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
