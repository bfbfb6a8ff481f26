package health

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meridian-edge/meridian/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quietLogger discards logs unless -v asks for them.
func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// fastHealth is a health config with short test timings.
func fastHealth(typ string) config.Health {
	return config.Health{
		Type:     typ,
		Path:     "/health",
		Interval: config.Duration(30 * time.Millisecond),
		Timeout:  config.Duration(500 * time.Millisecond),
		Rise:     2,
		Fall:     2,
	}
}

// regionOf is a region with one endpoint per URL.
func regionOf(name string, h config.Health, minHealthy int, urls ...string) config.Region {
	r := config.Region{Name: name, Health: h, MinHealthy: minHealthy}
	for _, u := range urls {
		r.Endpoints = append(r.Endpoints, config.Endpoint{URL: u, Weight: 1})
	}
	return r
}

// startChecker creates and starts a checker stopped at the end of the test.
func startChecker(t *testing.T, regions []config.Region, opts Options) *Checker {
	t.Helper()
	c := newChecker(t, regions, opts)
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

// newChecker creates a checker (not started) stopped at the end of the test.
func newChecker(t *testing.T, regions []config.Region, opts Options) *Checker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	c, err := New(regions, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// endpointState returns endpoint k of region i from the current snapshot.
func endpointState(c *Checker, i, k int) EndpointState {
	return c.Snapshot().Regions[i].Endpoints[k]
}

// flipServer answers its health path with a status the test sets, and
// counts the requests it served.
type flipServer struct {
	*httptest.Server
	status atomic.Int32
	served atomic.Int64
	mu     sync.Mutex
	last   *http.Request
}

func newFlipServer(t *testing.T, status int) *flipServer {
	t.Helper()
	f := &flipServer{}
	f.status.Store(int32(status))
	f.Server = httptest.NewServer(f)
	t.Cleanup(f.Close)
	return f
}

func (f *flipServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.last = r.Clone(context.Background())
	f.mu.Unlock()
	w.WriteHeader(int(f.status.Load()))
	_, _ = io.WriteString(w, "health\n")
	f.served.Add(1)
}

func (f *flipServer) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// hangListener accepts connections and never answers, until closed.
type hangListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newHangListener(t *testing.T) *hangListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	h := &hangListener{Listener: ln, done: make(chan struct{})}
	go h.accept()
	t.Cleanup(h.close)
	return h
}

func (h *hangListener) accept() {
	defer close(h.done)
	for {
		c, err := h.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns = append(h.conns, c)
		h.mu.Unlock()
	}
}

func (h *hangListener) close() {
	_ = h.Close()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Close()
	}
}

func (h *hangListener) URL() string { return "http://" + h.Addr().String() }

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// itoa is strconv.Itoa, short for building names.
func itoa(i int) string { return strconv.Itoa(i) }
