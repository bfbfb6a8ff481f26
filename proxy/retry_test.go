package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
)

func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	m := h.p.met
	switch name {
	case "requests":
		return testutil.ToFloat64(m.requests.WithLabelValues(labels...))
	case "retries":
		return testutil.ToFloat64(m.retries.WithLabelValues(labels...))
	case "failovers":
		return testutil.ToFloat64(m.failovers.WithLabelValues(labels...))
	}
	h.t.Fatalf("unknown metric %s", name)
	return 0
}

func TestRetryConnectFailure(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		tests := []struct {
			name       string
			method     string
			retries    int
			wantStatus int
			wantRegion string
			wantBody   string
		}{
			{"GET: both endpoints, then the next region", http.MethodGet, 2, 200, "b", "b"},
			{"POST never reached an upstream: retried", http.MethodPost, 2, 200, "b", "b"},
			{"out of attempts: 502", http.MethodGet, 1, 502, "a", "meridian: no upstream could answer\n"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := &named{name: "b"}
				svc := proxyService("api", []string{testHost}, "a", "b")
				svc.Proxy.Retries = tc.retries
				cfg := &config.Config{
					Regions: []config.Region{
						testRegion("a", deadURL(t), deadURL(t)),
						testRegion("b", upstream(t, b.ServeHTTP).URL),
					},
					Services: []config.Service{svc},
				}
				h := newHarness(t, cfg, path)
				resp, body := h.do(h.request(tc.method, testHost, "/", strings.NewReader("x")))
				if resp.StatusCode != tc.wantStatus || body != tc.wantBody {
					t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
				}
				if got := resp.Header.Get("X-Meridian-Region"); got != tc.wantRegion {
					t.Errorf("got X-Meridian-Region %q, want %q", got, tc.wantRegion)
				}
				for k := 0; k < 2; k++ {
					if n := h.rep.count(0, k, health.OutcomeConnectFailure); n != 1 {
						t.Errorf("endpoint a/%d: got %d connect failures reported, want 1", k, n)
					}
				}
				if got := h.metric("retries", "api", "a", "connect-failure"); got != float64(tc.retries) {
					t.Errorf("got %v connect-failure retries in a, want %d", got, tc.retries)
				}
				wantFailovers := 0.0
				if tc.wantRegion == "b" {
					wantFailovers = 1
					if n := h.rep.count(1, 0, health.OutcomeSuccess); n != 1 {
						t.Errorf("b/0: got %d successes reported, want 1", n)
					}
				}
				if got := h.metric("failovers", "api", "a", "b"); got != wantFailovers {
					t.Errorf("got %v failovers a→b, want %v", got, wantFailovers)
				}
				if got := h.metric("requests", "api", tc.wantRegion, strconv.Itoa(tc.wantStatus)); got != 1 {
					t.Errorf("got %v requests{region=%s,code=%d}, want 1", got, tc.wantRegion, tc.wantStatus)
				}
				h.checkFast(path)
			})
		}
	})
}

// dying reads the whole request body, records it, then drops the
// connection without answering.
type dying struct {
	mu     sync.Mutex
	bodies []string
}

func (d *dying) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body) // what arrived is what counts
	d.mu.Lock()
	d.bodies = append(d.bodies, string(b))
	d.mu.Unlock()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func (d *dying) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.bodies...)
}

func TestUpstreamDiesAfterReadingBody(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		a, b := &dying{}, &named{name: "b"}
		cfg := &config.Config{
			Regions: []config.Region{
				testRegion("a", upstream(t, a.ServeHTTP).URL),
				testRegion("b", upstream(t, b.ServeHTTP).URL),
			},
			Services: []config.Service{proxyService("api", []string{testHost}, "a", "b")},
		}
		h := newHarness(t, cfg, path)

		resp, body := h.do(h.request(http.MethodPost, testHost, "/orders", strings.NewReader("order-1")))
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("POST: got %d %q, want 502", resp.StatusCode, body)
		}
		if got := a.seen(); len(got) != 1 || got[0] != "order-1" {
			t.Errorf("upstream a got bodies %q, want exactly one order-1", got)
		}
		if b.count() != 0 {
			t.Errorf("upstream b got %d requests, want 0: a POST that reached an upstream is not replayed", b.count())
		}
		if n := h.rep.count(0, 0, health.Outcome5xx); n != 1 {
			t.Errorf("a/0: got %d failures reported, want 1", n)
		}

		// An idempotent request is retried elsewhere.
		resp, body = h.do(h.request(http.MethodPut, testHost, "/orders/1", strings.NewReader("order-2")))
		if resp.StatusCode != http.StatusOK || body != "b" {
			t.Errorf("PUT: got %d %q, want 200 b", resp.StatusCode, body)
		}
		if b.body[0] != "order-2" {
			t.Errorf("b got body %q, want order-2", b.body[0])
		}
		if got := h.metric("retries", "api", "a", "reset"); got != 1 {
			t.Errorf("got %v reset retries, want 1", got)
		}
		if got := h.metric("requests", "api", "a", "502"); got != 1 {
			t.Errorf("got %v requests{a,502}, want 1", got)
		}
		h.checkFast(path)
	})
}

// status503 reads the body and answers 503.
func status503(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body) // consumed, as an application would
	http.Error(w, "unavailable", http.StatusServiceUnavailable)
}

// hideLength makes a body of unknown length (sent chunked).
type hideLength struct{ r io.Reader }

func (h hideLength) Read(p []byte) (int, error) { return h.r.Read(p) }

func TestRequestBodyReplay(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		small, large := strings.Repeat("s", 512), strings.Repeat("L", 4<<10)
		tests := []struct {
			name       string
			aDead      bool
			body       io.Reader
			want       string
			wantStatus int
			wantB      string // body upstream b must get; "" = not reached
		}{
			{"small body replayed", false, strings.NewReader(small), "b", 200, small},
			{"small chunked body replayed", false, hideLength{strings.NewReader(small)}, "b", 200, small},
			{"large body not replayed", false, strings.NewReader(large), "unavailable\n", 503, ""},
			{"large chunked body not replayed", false, hideLength{strings.NewReader(large)}, "unavailable\n", 503, ""},
			{"large body never sent: retried on connect failure", true, strings.NewReader(large), "b", 200, large},
			{"large chunked body never sent: retried", true, hideLength{strings.NewReader(large)}, "b", 200, large},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := &named{name: "b"}
				aURL := deadURL(t)
				if !tc.aDead {
					aURL = upstream(t, status503).URL
				}
				svc := proxyService("api", []string{testHost}, "a", "b")
				svc.Proxy.MaxRetryBody = 1 << 10
				cfg := &config.Config{
					Regions:  []config.Region{testRegion("a", aURL), testRegion("b", upstream(t, b.ServeHTTP).URL)},
					Services: []config.Service{svc},
				}
				h := newHarness(t, cfg, path)
				resp, body := h.do(h.request(http.MethodPut, testHost, "/doc", tc.body))
				if resp.StatusCode != tc.wantStatus || body != tc.want {
					t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.want)
				}
				switch {
				case tc.wantB == "" && b.count() != 0:
					t.Errorf("b got %d requests, want none", b.count())
				case tc.wantB != "" && (b.count() != 1 || b.body[0] != tc.wantB):
					t.Errorf("b got %d requests, bodies of %v bytes; want one with the whole body", b.count(), lens(b.body))
				}
			})
		}
	})
}

func lens(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}

func TestStatusRetries(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		tests := []struct {
			name       string
			retryOn    []string
			aStatus    int
			method     string
			header     map[string]string
			wantStatus int
			wantReason string // "" = no retry
		}{
			{"GET 503 retried", nil, 503, http.MethodGet, nil, 200, "503"},
			{"GET 500 not in retry_on", nil, 500, http.MethodGet, nil, 500, ""},
			{"GET 500 with 5xx", []string{"5xx"}, 500, http.MethodGet, nil, 200, "5xx"},
			{"GET 429 listed", []string{"429"}, 429, http.MethodGet, nil, 200, "429"},
			{"POST 503 passed through", nil, 503, http.MethodPost, nil, 503, ""},
			{"POST 503 with Idempotency-Key retried", nil, 503, http.MethodPost, map[string]string{"Idempotency-Key": "k1"}, 200, "503"},
			{"DELETE 503 retried", nil, 503, http.MethodDelete, nil, 200, "503"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := &named{name: "b"}
				a := upstream(t, func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, "no", tc.aStatus)
				})
				svc := proxyService("api", []string{testHost}, "a", "b")
				if tc.retryOn != nil {
					svc.Proxy.RetryOn = tc.retryOn
				}
				cfg := &config.Config{
					Regions:  []config.Region{testRegion("a", a.URL), testRegion("b", upstream(t, b.ServeHTTP).URL)},
					Services: []config.Service{svc},
				}
				h := newHarness(t, cfg, path)
				req := h.request(tc.method, testHost, "/", strings.NewReader("x"))
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, body := h.do(req)
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("got %d %q, want %d", resp.StatusCode, body, tc.wantStatus)
				}
				wantB := 0
				if tc.wantReason != "" {
					wantB = 1
					if got := h.metric("retries", "api", "a", tc.wantReason); got != 1 {
						t.Errorf("got %v retries with reason %s, want 1", got, tc.wantReason)
					}
				}
				if b.count() != wantB {
					t.Errorf("b got %d requests, want %d", b.count(), wantB)
				}
				wantOutcome := health.OutcomeSuccess
				if tc.aStatus >= 500 {
					wantOutcome = health.Outcome5xx
				}
				if n := h.rep.count(0, 0, wantOutcome); n != 1 {
					t.Errorf("a/0: got %d reports of %v, want 1", n, wantOutcome)
				}
				h.checkFast(path)
			})
		}
	})
}

// hanging answers only when its request ends. It reads the body first: the
// server notices a closed connection only after that.
func hanging(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body) // see above
	<-r.Context().Done()
}

func TestTimeouts(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		t.Run("whole request: 504", func(t *testing.T) {
			svc := proxyService("api", []string{testHost}, "a")
			svc.Proxy.Timeout = config.Duration(200 * time.Millisecond)
			svc.Proxy.Retries = 0
			cfg := &config.Config{Regions: []config.Region{testRegion("a", upstream(t, hanging).URL)}, Services: []config.Service{svc}}
			h := newHarness(t, cfg, path)
			start := time.Now()
			resp, body := h.get(testHost, "/")
			if resp.StatusCode != http.StatusGatewayTimeout || body != "meridian: upstream timed out\n" {
				t.Errorf("got %d %q, want 504", resp.StatusCode, body)
			}
			if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
				t.Errorf("answered after %v, want about 200ms", d)
			}
			if n := h.rep.count(0, 0, health.OutcomeTimeout); n != 1 {
				t.Errorf("got %d timeouts reported, want 1", n)
			}
		})
		t.Run("attempt timeout: idempotent retried, POST not", func(t *testing.T) {
			b := &named{name: "b"}
			svc := proxyService("api", []string{testHost}, "a", "b")
			svc.Proxy.Timeout = config.Duration(time.Second) // 500ms per attempt
			svc.Proxy.Retries = 1
			cfg := &config.Config{
				Regions:  []config.Region{testRegion("a", upstream(t, hanging).URL), testRegion("b", upstream(t, b.ServeHTTP).URL)},
				Services: []config.Service{svc},
			}
			h := newHarness(t, cfg, path)
			start := time.Now()
			if resp, body := h.get(testHost, "/"); resp.StatusCode != 200 || body != "b" {
				t.Errorf("GET: got %d %q, want 200 b", resp.StatusCode, body)
			}
			if d := time.Since(start); d < 500*time.Millisecond || d > 3*time.Second {
				t.Errorf("GET answered after %v, want about 500ms", d)
			}
			if got := h.metric("retries", "api", "a", "timeout"); got != 1 {
				t.Errorf("got %v timeout retries, want 1", got)
			}
			resp, _ := h.do(h.request(http.MethodPost, testHost, "/", strings.NewReader("x")))
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("POST: got %d, want 504", resp.StatusCode)
			}
			if b.count() != 1 {
				t.Errorf("b got %d requests, want 1 (the GET)", b.count())
			}
		})
	})
}

func TestRetryBudget(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		const clients = 10
		releaseA, releaseB := make(chan struct{}), make(chan struct{})
		var inA, inB, maxB atomic.Int32
		a := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			inA.Add(1)
			select {
			case <-releaseA:
			case <-r.Context().Done():
			}
			http.Error(w, "busy", http.StatusServiceUnavailable)
		})
		b := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			n := inB.Add(1)
			for m := maxB.Load(); n > m && !maxB.CompareAndSwap(m, n); m = maxB.Load() {
			}
			select {
			case <-releaseB:
			case <-r.Context().Done():
			}
			_, _ = io.WriteString(w, "b")
		})
		svc := proxyService("api", []string{testHost}, "a", "b")
		svc.Proxy.RetryBudget = 0 // only the minimum of 3 retries in flight
		svc.Proxy.Retries = 1
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("a", a.URL), testRegion("b", b.URL)},
			Services: []config.Service{svc},
		}
		h := newHarness(t, cfg, path)

		var wg sync.WaitGroup
		var done atomic.Int32
		codes := make(chan int, clients)
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer done.Add(1)
				resp, err := h.c.Do(h.request(http.MethodGet, testHost, "/", nil))
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		waitFor(t, "all requests at a", 5*time.Second, func() bool { return inA.Load() == clients })
		close(releaseA)
		waitFor(t, "3 retries at b and the rest answered", 5*time.Second, func() bool {
			return inB.Load() == 3 && done.Load() == clients-3
		})
		close(releaseB)
		wg.Wait()
		close(codes)
		count := map[int]int{}
		for c := range codes {
			count[c]++
		}
		if count[200] != 3 || count[503] != clients-3 {
			t.Errorf("got statuses %v, want 3×200 and %d×503", count, clients-3)
		}
		if maxB.Load() != 3 {
			t.Errorf("b saw up to %d retries at once, want 3", maxB.Load())
		}
		if got := h.metric("retries", "api", "a", "503"); got != 3 {
			t.Errorf("got %v retries counted, want 3", got)
		}
	})
}

// TestClientFaultsNotReported: a streamed body that is too slow or breaks
// off is the client's failure, not the endpoint's: passive health hears
// nothing against it.
func TestClientFaultsNotReported(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		newProxy := func(t *testing.T) *harness {
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				if _, err := io.Copy(io.Discard, r.Body); err != nil {
					return // the proxy gave up on the body
				}
				_, _ = io.WriteString(w, "ok")
			})
			svc := proxyService("api", []string{testHost}, "a")
			svc.Proxy.Timeout = config.Duration(300 * time.Millisecond)
			svc.Proxy.MaxRetryBody = 1 << 10
			return newHarness(t, &config.Config{Regions: []config.Region{testRegion("a", up.URL)}, Services: []config.Service{svc}}, path)
		}
		noReports := func(t *testing.T, h *harness) {
			t.Helper()
			waitFor(t, "the request to be counted", 5*time.Second, func() bool {
				return testutil.CollectAndCount(h.p.met.requests) > 0
			})
			for _, o := range []health.Outcome{health.OutcomeTimeout, health.Outcome5xx, health.OutcomeConnectFailure} {
				if n := h.rep.count(0, 0, o); n != 0 {
					t.Errorf("endpoint got %d %v reports for the client's failure", n, o)
				}
			}
		}

		t.Run("slow upload", func(t *testing.T) {
			h := newProxy(t)
			pr, pw := io.Pipe()
			stop := make(chan struct{})
			go func() {
				_, _ = pw.Write([]byte(strings.Repeat("x", 2<<10)))
				select {
				case <-stop:
				case <-time.After(5 * time.Second):
				}
				pw.CloseWithError(io.ErrUnexpectedEOF)
			}()
			defer close(stop)
			req := h.request(http.MethodPut, testHost, "/", pr)
			req.ContentLength = 8 << 10
			resp, err := h.c.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestTimeout {
					t.Errorf("a body stalled past the timeout: got status %d, want 408", resp.StatusCode)
				}
			}
			noReports(t, h)
			if got := h.metric("requests", "api", "a", "408"); got != 1 {
				t.Errorf("got %v requests{a,408}, want 1", got)
			}
		})
		t.Run("client leaves mid-upload", func(t *testing.T) {
			h := newProxy(t)
			conn, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.WriteString(conn, "PUT / HTTP/1.1\r\nHost: "+testHost+"\r\nContent-Length: 10000\r\n\r\n"+strings.Repeat("x", 2000))
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			noReports(t, h)
		})
	})
}

// TestClientGoneIs499: a client that closes while the upstream has yet to
// answer is counted as 499 (never sent); the upstream's request is
// cancelled, nothing is retried and no failure is reported against the
// upstream. The fast path notices at its next look at the client.
func TestClientGoneIs499(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		t.Run("cleartext", func(t *testing.T) {
			checkClientGone(t, path, nil, func(h *harness) (net.Conn, func()) {
				c := dialRaw(t, h.addr).conn
				return c, func() { c.Close() }
			})
		})
		// Over TLS the client closes its socket without a close_notify
		// alert, as a process that was killed does.
		t.Run("tls", func(t *testing.T) {
			ln, tlsOn, roots := tlsListener(t)
			checkClientGone(t, path, []any{ln, tlsOn}, func(h *harness) (net.Conn, func()) {
				c, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: roots, ServerName: "example.com", NextProtos: []string{"http/1.1"}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c, func() { c.NetConn().Close() }
			})
		})
	})
}

// checkClientGone sends a request that the upstream holds, has the client
// leave with cut, and wants the upstream's request cancelled, a 499
// counted, and no retry or outcome reported. dial connects to the proxy.
func checkClientGone(t *testing.T, path servePath, tweaks []any, dial func(*harness) (net.Conn, func())) {
	var got atomic.Int32
	cancelled := make(chan struct{}, 4)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(20 * time.Second):
		}
	})
	svc := proxyService("api", []string{testHost}, "a")
	svc.Proxy.Timeout = config.Duration(20 * time.Second)
	cfg := &config.Config{Regions: []config.Region{testRegion("a", up.URL)}, Services: []config.Service{svc}}
	h := newHarness(t, cfg, append(tweaks, path)...)
	c, cut := dial(h)
	if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: "+testHost+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request upstream", 5*time.Second, func() bool { return got.Load() == 1 })
	start := time.Now()
	cut()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream's request was not cancelled after the client left")
	}
	if d := time.Since(start); d > fastpath.ClientCheckEvery+time.Second {
		t.Errorf("cancelled %v after the client left, want within about %v", d, fastpath.ClientCheckEvery)
	}
	waitFor(t, "the 499 to be counted", 5*time.Second, func() bool { return h.metric("requests", "api", "a", "499") == 1 })
	if n := got.Load(); n != 1 {
		t.Errorf("upstream got %d requests, want 1 (no retry)", n)
	}
	for _, o := range []health.Outcome{health.OutcomeConnectFailure, health.OutcomeTimeout, health.Outcome5xx} {
		if n := h.rep.count(0, 0, o); n != 0 {
			t.Errorf("got %d %v outcomes reported, want none", n, o)
		}
	}
}

// TestSlowBodyOutlivesClientChecks: a response whose body takes longer
// than the fast path's looks at the client (a second apart) arrives whole;
// only the request's timeout bounds it.
func TestSlowBodyOutlivesClientChecks(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(200)
			for _, b := range []string{"a", "b", "c"} {
				_, _ = io.WriteString(w, b)
				w.(http.Flusher).Flush()
				time.Sleep(fastpath.ClientCheckEvery * 3 / 4)
			}
		})
		svc := proxyService("api", []string{testHost}, "a")
		svc.Proxy.Retries = 0
		cfg := &config.Config{Regions: []config.Region{testRegion("a", up.URL)}, Services: []config.Service{svc}}
		h := newHarness(t, cfg, path)
		resp, body := h.get(testHost, "/")
		if resp.StatusCode != 200 || body != "abc" {
			t.Errorf("got %d %q, want 200 abc", resp.StatusCode, body)
		}
	})
}
