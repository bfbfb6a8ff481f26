package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/policy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testHost is the hostname of the service most tests use.
const testHost = "api.example.com"

// outcomeKey is one reported outcome of one endpoint.
type outcomeKey struct {
	region, endpoint int
	o                health.Outcome
}

// fakeReporter records passive health reports.
type fakeReporter struct {
	mu sync.Mutex
	n  map[outcomeKey]int
}

func (f *fakeReporter) Report(region, endpoint int, o health.Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = make(map[outcomeKey]int)
	}
	f.n[outcomeKey{region, endpoint, o}]++
}

func (f *fakeReporter) count(region, endpoint int, o health.Outcome) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[outcomeKey{region, endpoint, o}]
}

// proxyService is a failover proxy-mode service for hosts over regions, with
// generous timeouts and a budget that never limits the tests that are not
// about it.
func proxyService(name string, hosts []string, regions ...string) config.Service {
	return config.Service{
		Name:      name,
		Hostnames: hosts,
		Mode:      "proxy",
		Policy:    "failover",
		Regions:   regions,
		Proxy: config.Proxy{
			Retries:        2,
			RetryBudget:    100,
			RetryOn:        config.DefaultRetryOn(),
			ConnectTimeout: config.Duration(time.Second),
			Timeout:        config.Duration(5 * time.Second),
			MaxRetryBody:   64 << 10,
		},
	}
}

// testRegion is a region of endpoints at urls, without probes.
func testRegion(name string, urls ...string) config.Region {
	r := config.Region{Name: name, Health: config.Health{Type: "none"}, MinHealthy: 1}
	for _, u := range urls {
		r.Endpoints = append(r.Endpoints, config.Endpoint{URL: u, Weight: 1})
	}
	return r
}

// policyFor builds the policy snapshot the node would: region health from
// hs (nil = all up), dials from the config.
func policyFor(t testing.TB, cfg *config.Config, hs *health.Snapshot) *policy.Snapshot {
	t.Helper()
	idx := make(map[string]int)
	regions := make([]policy.Region, len(cfg.Regions))
	for i, r := range cfg.Regions {
		idx[r.Name] = i
		regions[i] = policy.Region{Name: r.Name, Up: hs.RegionUp(i)}
	}
	services := make([]policy.Service, len(cfg.Services))
	for j := range cfg.Services {
		cs := &cfg.Services[j]
		kind, err := policy.ParseKind(cs.Policy)
		if err != nil {
			t.Fatalf("service %s: %v", cs.Name, err)
		}
		ps := policy.Service{Name: cs.Name, Kind: kind, FailClosed: cs.AllDown == "nodata", Salt: policy.HashString(cs.Name)}
		if cs.Mode == "proxy" {
			ps.Mode = policy.ModeProxy
		}
		for _, r := range cs.Regions {
			ps.Regions = append(ps.Regions, idx[r])
			ps.Dials = append(ps.Dials, cs.DialFor(r))
		}
		services[j] = ps
	}
	s, err := policy.NewSnapshot(regions, services, policy.Point{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// servePath is how a harness serves: net/http alone, or Serve's fast path
// in front of it.
type servePath bool

const (
	slowPath servePath = false
	fastPath servePath = true
)

func (sp servePath) String() string {
	if sp == fastPath {
		return "fast"
	}
	return "slow"
}

// forPaths runs f as a subtest for each serve path.
func forPaths(t *testing.T, f func(t *testing.T, path servePath)) {
	t.Helper()
	for _, sp := range []servePath{slowPath, fastPath} {
		t.Run(sp.String(), func(t *testing.T) { f(t, sp) })
	}
}

// harness is a proxy serving on a real loopback listener.
type harness struct {
	t    testing.TB
	p    *Proxy
	cfg  *config.Config
	reg  *prometheus.Registry
	rep  *fakeReporter
	srv  *http.Server
	addr string // host:port of the proxy
	c    *http.Client
	// slowConns counts the client connections net/http served.
	slowConns atomic.Int64
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newHarness starts a proxy for cfg. Tweaks are func(*Options) (before
// New), func(*http.Server) (before it serves), a servePath (default
// slowPath) or a net.Listener to serve on (instead of a new one).
func newHarness(t testing.TB, cfg *config.Config, tweaks ...any) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, reg: prometheus.NewRegistry(), rep: &fakeReporter{}}
	opts := Options{Logger: quietLogger(), Registerer: h.reg, Reporter: h.rep}
	for _, tw := range tweaks {
		if f, ok := tw.(func(*Options)); ok {
			f(&opts)
		}
	}
	h.p = New(opts)
	h.update(nil)
	h.srv = h.p.Server("127.0.0.1:0")
	h.srv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			h.slowConns.Add(1)
		}
	}
	path := slowPath
	var ln net.Listener
	for _, tw := range tweaks {
		switch f := tw.(type) {
		case func(*http.Server):
			f(h.srv)
		case servePath:
			path = f
		case net.Listener:
			ln = f
		case func(*Options):
		default:
			t.Fatalf("unknown harness tweak %T", tw)
		}
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	h.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve := h.srv.Serve
		if path == fastPath {
			serve = func(ln net.Listener) error { return h.p.Serve(ln, h.srv) }
		}
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serving: %v", err)
		}
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	h.c = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if path == fastPath {
			_ = h.p.Shutdown(ctx) // closes what is left when it gives up
		} else if err := h.srv.Shutdown(ctx); err != nil {
			h.srv.Close()
		}
		<-done
		h.p.Close()
	})
	return h
}

// checkFast fails the test when a fast-path harness handed a connection
// to net/http.
func (h *harness) checkFast(path servePath) {
	h.t.Helper()
	if n := h.slowConns.Load(); path == fastPath && n != 0 {
		h.t.Errorf("net/http served %d connections, want 0 on the fast path", n)
	}
}

// update gives the proxy a table built from the harness config and hs.
func (h *harness) update(hs *health.Snapshot) {
	h.t.Helper()
	if err := h.p.Update(Input{Config: h.cfg, Policy: policyFor(h.t, h.cfg, hs), Health: hs}); err != nil {
		h.t.Fatalf("update: %v", err)
	}
}

// request builds a request to the proxy for host.
func (h *harness) request(method, host, path string, body io.Reader) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(method, "http://"+h.addr+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Host = host
	return req
}

// reply is a response whose body has been read and closed.
type reply struct {
	StatusCode int
	Header     http.Header
}

// do sends req and returns the response head and body.
func (h *harness) do(req *http.Request) (reply, string) {
	h.t.Helper()
	resp, err := h.c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return reply{StatusCode: resp.StatusCode, Header: resp.Header}, string(b)
}

func (h *harness) get(host, path string) (reply, string) {
	h.t.Helper()
	return h.do(h.request(http.MethodGet, host, path, nil))
}

// upstream starts an HTTP server for handler, closed when the test ends.
func upstream(t testing.TB, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(handler)
	t.Cleanup(s.Close)
	return s
}

// deadURL returns an http URL of a loopback port nobody listens on. The
// port stays bound (but not listening) until the test ends, so that no
// other server of the test is given it: connecting is refused.
func deadURL(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return "http://127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
}

// named answers 200 with its name and counts its requests.
type named struct {
	name string
	mu   sync.Mutex
	hits int
	body []string // request bodies seen
}

func (n *named) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body) // a broken body shows as a short one in the test
	n.mu.Lock()
	n.hits++
	n.body = append(n.body, string(b))
	n.mu.Unlock()
	_, _ = io.WriteString(w, n.name)
}

func (n *named) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hits
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dribbleHead writes a request head that never ends to conn, a header
// line every 50ms, until the connection fails or the returned stop is
// called (which waits for the writer to end).
func dribbleHead(conn net.Conn) (stop func()) {
	done, wrote := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; i < 100; i++ {
			line := "GET / HTTP/1.1\r\n"
			if i > 0 {
				line = "X-Slow: " + strings.Repeat("x", i) + "\r\n"
			}
			if _, err := io.WriteString(conn, line); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); <-wrote }
}

// checkCut reads r until the proxy closes the connection and fails the
// test unless that happened about limit after start.
func checkCut(t *testing.T, r io.Reader, start time.Time, limit time.Duration) {
	t.Helper()
	_, err := io.Copy(io.Discard, r)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v: the slow head was not cut", elapsed)
	}
	// The server may start the clock a little before Dial returns.
	if elapsed < limit*9/10 || elapsed > limit+2*time.Second {
		t.Errorf("connection closed after %v, want about %v", elapsed, limit)
	}
}
