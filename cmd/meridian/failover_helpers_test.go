package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// foToken is the write token of the failover tests' nodes.
const foToken = "failover-secret"

// regionSrv is an upstream acting as a region: it answers its health
// path 200 while healthy, and every other request with its name, counting
// requests by method. appStatus, when set, is the status of every
// non-health answer.
type regionSrv struct {
	name      string
	srv       *http.Server
	ln        net.Listener
	url       string
	healthy   atomic.Bool
	blind     atomic.Bool // /health/blind fails while set (or while not healthy)
	appStatus atomic.Int32
	mu        sync.Mutex
	methods   map[string]int
}

func newRegionSrv(t *testing.T, name string) *regionSrv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &regionSrv{name: name, ln: ln, url: "http://" + ln.Addr().String(), methods: map[string]int{}}
	r.healthy.Store(true)
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *regionSrv) serve(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	if req.URL.Path == "/health/ready" || req.URL.Path == "/health/blind" {
		if !r.healthy.Load() || (req.URL.Path == "/health/blind" && r.blind.Load()) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
		return
	}
	r.mu.Lock()
	r.methods[req.Method]++
	r.mu.Unlock()
	if c := r.appStatus.Load(); c != 0 {
		w.WriteHeader(int(c))
	}
	_, _ = io.WriteString(w, r.name)
}

func (r *regionSrv) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.methods[method]
}

// hooks is the replication side of the regions: a lag endpoint per region
// whose answer the test sets, and a promote endpoint that records calls.
type hooks struct {
	url      string
	mu       sync.Mutex
	lag      map[string]string // region → body of its lag answer; "" = 500
	promoted map[string]int
	promote  atomic.Int32 // status the promote hook answers (default 200)
	delay    atomic.Int64 // how long the promote hook takes to answer (ns)
}

func newHooks(t *testing.T) *hooks {
	t.Helper()
	h := &hooks{lag: map[string]string{}, promoted: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		region := req.URL.Query().Get("region")
		switch req.URL.Path {
		case "/lag":
			h.mu.Lock()
			body := h.lag[region]
			h.mu.Unlock()
			if body == "" {
				http.Error(w, "replica unreachable", http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, body)
		case "/promote":
			if req.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			h.mu.Lock()
			h.promoted[region]++
			h.mu.Unlock()
			if d := time.Duration(h.delay.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-req.Context().Done():
				}
			}
			if c := h.promote.Load(); c != 0 {
				w.WriteHeader(int(c))
			}
		default:
			http.NotFound(w, req)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return h
}

func (h *hooks) setLag(region, body string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lag[region] = body
}

func (h *hooks) promotions(region string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.promoted[region]
}

// freePorts returns n distinct loopback ports (TCP and UDP) that were free
// a moment ago: each is held until all are chosen, so that none is handed
// out twice.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for len(out) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // its UDP twin is taken: try another
		}
		held = append(held, pc)
		out = append(out, port)
	}
	return out
}

// foEnv is a meridian process steering between two upstream regions,
// us-east (the configured writes primary) and eu-west, with lag and
// promote hooks.
type foEnv struct {
	t                 *testing.T
	dir, cfgPath      string
	east, west        *regionSrv
	hooks             *hooks
	admin, proxy, dns string
	child             *child
	hc                *http.Client
	failover          string // YAML of the failover block
	order             string // the service's regions, in policy order
}

// newFoEnv writes the config; failover is the service's failover block
// (YAML flow map), order its regions in policy order.
func newFoEnv(t *testing.T, failover, order string) *foEnv {
	t.Helper()
	t.Setenv("MERIDIAN_FO_TOKEN", foToken)
	e := &foEnv{t: t, dir: t.TempDir(), east: newRegionSrv(t, "us-east"), west: newRegionSrv(t, "eu-west"), hooks: newHooks(t),
		hc: &http.Client{Timeout: 10 * time.Second}, failover: failover, order: order}
	e.hooks.setLag("us-east", `{"lag_seconds": 0}`)
	e.hooks.setLag("eu-west", `{"lag_seconds": 0.2}`)
	e.writeConfig()
	return e
}

// writeConfig writes the config with new listen ports.
func (e *foEnv) writeConfig() {
	t := e.t
	t.Helper()
	failover, order := e.failover, e.order
	ports := freePorts(t, 3)
	adminPort, httpPort, dnsPort := ports[0], ports[1], ports[2]
	e.admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	e.proxy = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	e.dns = fmt.Sprintf("127.0.0.1:%d", dnsPort)
	region := func(r *regionSrv, addr string) string {
		return fmt.Sprintf(`
  - name: %s
    endpoints: [{address: %s, url: "%s"}]
    health: {interval: 100ms, timeout: 2s, rise: 1, fall: 2}
    replication: {lag_url: "%s/lag?region=%s", interval: 100ms}
    promote: {url: "%s/promote?region=%s", timeout: 2s}`, r.name, addr, r.url, e.hooks.url, r.name, e.hooks.url, r.name)
	}
	text := fmt.Sprintf(`
node: {name: fo-test, addresses: [127.0.0.1], drain: 0s, shutdown_timeout: 2s}
listen: {dns: ["127.0.0.1:%d"], http: ["127.0.0.1:%d"], admin: "127.0.0.1:%d"}
admin:
  tokens: [{name: ops, role: write, secret_env: MERIDIAN_FO_TOKEN}]
state: {path: %s}
regions:%s%s
zones:
  - name: example.test
    nameservers: [ns1.example.test]
services:
  - name: api
    hostnames: [api.example.test]
    mode: proxy
    policy: failover
    regions: [%s]
    proxy: {retries: 2, connect_timeout: 500ms, timeout: 5s}
    writes: {primary: us-east}
    failover: %s
  - name: write
    hostnames: [write.example.test]
    policy: failover
    regions: [us-east, eu-west]
    failover: {rpo: 1s, hold: 1s}
`, dnsPort, httpPort, adminPort, filepath.Join(e.dir, "state.json"), region(e.east, "192.0.2.1"), region(e.west, "192.0.2.2"), order, failover)
	e.cfgPath = filepath.Join(e.dir, "meridian.yaml")
	if err := os.WriteFile(e.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the node and waits until it is ready with both lags read.
// When one of its ports was taken before it bound it, the config is written
// again with new ports and it is started again.
func (e *foEnv) start() {
	e.t.Helper()
	for attempt := 1; ; attempt++ {
		e.child = startChild(e.t, "run", "--config", e.cfgPath)
		if startedOrClash(e.t, e.child, 30*time.Second, "node ready", func() bool {
			resp, err := e.hc.Get(e.admin + "/health/ready")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}) {
			return
		}
		if attempt == portClashAttempts {
			e.t.Fatalf("ports taken %d times in a row", attempt)
		}
		e.writeConfig()
	}
}

// call sends an admin request with the write token and decodes the answer
// into v (when not nil); it returns the status.
func (e *foEnv) call(method, path string, body, v any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.admin+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+foToken)
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, v); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (e *foEnv) startFailover(req admin.FailoverRequest) (state.Failover, int) {
	var f state.Failover
	code := e.call(http.MethodPost, "/v1/services/api/failovers", req, &f)
	return f, code
}

func (e *foEnv) failoverByID(id string) state.Failover {
	e.t.Helper()
	var body admin.FailoversBody
	if code := e.call(http.MethodGet, "/v1/services/api/failovers", nil, &body); code != 200 {
		e.t.Fatalf("listing failovers: status %d", code)
	}
	for _, f := range body.Failovers {
		if f.ID == id {
			return f
		}
	}
	e.t.Fatalf("failover %s not listed", id)
	return state.Failover{}
}

// waitEnded polls a failover until it is no longer running and returns
// it with the test's clock reading when it was first seen ended.
func (e *foEnv) waitEnded(id string, within time.Duration) (state.Failover, time.Time) {
	e.t.Helper()
	var f state.Failover
	poll(e.t, within, "failover "+id+" to end", func() bool {
		f = e.failoverByID(id)
		return f.State != state.FailoverRunning
	})
	return f, time.Now()
}

func (e *foEnv) service() node.ServiceView {
	e.t.Helper()
	var sv node.ServiceView
	if code := e.call(http.MethodGet, "/v1/services/api", nil, &sv); code != 200 {
		e.t.Fatalf("reading the service: status %d", code)
	}
	return sv
}

func dialOf(sv node.ServiceView, region string) int {
	for _, r := range sv.Regions {
		if r.Name == region {
			return r.Dial
		}
	}
	return -1
}

// send makes one proxied request; chunked sends the body without a
// length, which the fast path leaves to net/http.
func (e *foEnv) send(method string, chunked bool) (code int, region string, retryAfter string) {
	e.t.Helper()
	var body io.Reader
	if method != http.MethodGet {
		body = strings.NewReader(`{"k":"v"}`)
		if chunked {
			body = io.MultiReader(strings.NewReader(`{"k":`), strings.NewReader(`"v"}`))
		}
	}
	req, err := http.NewRequest(method, e.proxy+"/item", body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = "api.example.test"
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s through the proxy: %v", method, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Meridian-Region"), resp.Header.Get("Retry-After")
}

// waitServing polls the node's status until region's serving state is up.
func (e *foEnv) waitServing(region string, up bool) {
	e.t.Helper()
	poll(e.t, 10*time.Second, fmt.Sprintf("%s serving=%v", region, up), func() bool {
		var st node.StatusView
		if e.call(http.MethodGet, "/v1/status", nil, &st) != 200 {
			return false
		}
		for _, r := range st.Regions {
			if r.Name == region {
				return r.Effective == up
			}
		}
		return false
	})
}

// waitLag polls the node's status until region's replica lag reads want.
func (e *foEnv) waitLag(region string, known bool, want float64) {
	e.t.Helper()
	poll(e.t, 10*time.Second, fmt.Sprintf("lag of %s", region), func() bool {
		var st node.StatusView
		if e.call(http.MethodGet, "/v1/status", nil, &st) != 200 {
			return false
		}
		for _, r := range st.Regions {
			if r.Name == region && r.Replica != nil {
				return r.Replica.Known == known && (!known || r.Replica.Seconds == want)
			}
		}
		return false
	})
}

// stepsInOrder checks that a finished failover recorded steps from..to in
// order with rising times.
func stepsInOrder(t *testing.T, f state.Failover, upTo int) {
	t.Helper()
	if len(f.Steps) != upTo {
		t.Fatalf("failover recorded %d steps, want %d: %+v", len(f.Steps), upTo, f.Steps)
	}
	for i, s := range f.Steps {
		if s.Step != i+1 || s.Time.IsZero() {
			t.Fatalf("step %d: got %+v", i+1, s)
		}
		if i > 0 && s.Time.Before(f.Steps[i-1].Time) {
			t.Fatalf("step %d at %s is before step %d at %s", s.Step, s.Time, i, f.Steps[i-1].Time)
		}
	}
}
