package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
)

// Test tokens: ops may change, grafana may only read.
//
//nolint:gosec // G101: fixed credentials of throwaway test nodes
const (
	writeSecret = "w-3c1d9f0a7b5e4c2d"
	readSecret  = "r-8a6b4c2d0e1f3a5b"
	badSecret   = "x-0000000000000000"
)

// Region endpoint addresses the DNS answers carry.
const (
	addrR1 = "192.0.2.1"
	addrR2 = "192.0.2.2"
)

// env is a running node with its admin API, built from a config file in a
// temporary folder, with two regions whose endpoints are httptest servers.
type env struct {
	t         *testing.T
	dir       string
	cfgPath   string
	statePath string
	upstreams []*httptest.Server
	n         *node.Node
	base      string // admin API URL
	hc        *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.cfgPath = filepath.Join(e.dir, "config.yaml")
	e.statePath = filepath.Join(e.dir, "state.json")
	for range 2 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok\n")
		}))
		t.Cleanup(srv.Close)
		e.upstreams = append(e.upstreams, srv)
	}
	writeFile(t, filepath.Join(e.dir, "ops.token"), writeSecret+"\n")
	writeFile(t, filepath.Join(e.dir, "read.token"), readSecret+"\n")
	writeFile(t, e.cfgPath, e.config(""))
	tr := &http.Transport{DisableKeepAlives: true}
	e.hc = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	e.start()
	return e
}

// config renders the node's config; extra is appended verbatim.
func (e *env) config(extra string) string {
	return fmt.Sprintf(`node:
  name: test-edge
  drain: 0s
  shutdown_timeout: 2s
listen:
  dns: ["127.0.0.1:0"]
  admin: "127.0.0.1:0"
admin:
  tokens:
    - {name: ops, role: write, secret_file: ops.token}
    - {name: grafana, role: read, secret_file: read.token}
state:
  path: %s
regions:
  - name: r1
    location: {lat: 50.1, lon: 8.7}
    endpoints:
      - {address: %s, url: "%s"}
    health: {interval: 100ms, timeout: 1s, rise: 1, fall: 1}
  - name: r2
    location: {lat: 38.9, lon: -77.4}
    endpoints:
      - {address: %s, url: "%s"}
    health: {interval: 100ms, timeout: 1s, rise: 1, fall: 1}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
    records:
      - "ns1 3600 A 127.0.0.1"
services:
  - name: api
    hostnames: [api.example.test]
    mode: dns
    policy: failover
    regions: [r1, r2]
    ttl: 5s
%s`, e.statePath, addrR1, e.upstreams[0].URL, addrR2, e.upstreams[1].URL, extra)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// handlerFor is how a node mounts the admin API, as cmd/meridian does.
func handlerFor(log *slog.Logger) func(*node.Node) http.Handler {
	return func(n *node.Node) http.Handler {
		current := func() config.Admin { return n.View().Config.Admin }
		return admin.New(n, current(), admin.Options{Logger: log, Current: current})
	}
}

// start loads the config file and starts a node on it, waiting until both
// regions pass their health checks.
func (e *env) start() {
	t := e.t
	t.Helper()
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatalf("loading config: %v", err)
	}
	log := testLogger(t)
	n, err := node.New(cfg, node.Options{Logger: log, ConfigPath: e.cfgPath, Admin: handlerFor(log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	e.n = n
	t.Cleanup(e.stop)
	e.base = "http://" + n.Addr("admin").String()
	waitFor(t, "both regions up", func() bool {
		st := n.Status()
		return len(st.Regions) == 2 && st.Regions[0].Up && st.Regions[1].Up
	})
}

func (e *env) stop() {
	if e.n != nil {
		_ = e.n.Close()
		e.n = nil
	}
}

// restart stops the node and starts a new one from the same files.
func (e *env) restart() {
	e.stop()
	e.start()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// response is an answer of the admin API, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) errorMessage(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...}: %v", r.body, err)
	}
	return e.Error
}

func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

// do sends one request; secret "" sends no Authorization header.
func (e *env) do(method, path, secret, body string, header ...string) *response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}
}

// must sends a request that has to succeed with 200.
func (e *env) must(method, path, body string, header ...string) *response {
	e.t.Helper()
	r := e.do(method, path, writeSecret, body, header...)
	if r.status != http.StatusOK {
		e.t.Fatalf("%s %s: got %d %s, want 200", method, path, r.status, r.body)
	}
	return r
}

func (e *env) service(name string) node.ServiceView {
	e.t.Helper()
	var sv node.ServiceView
	e.must(http.MethodGet, "/v1/services/"+name, "").decode(e.t, &sv)
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

// stateBytes reads the state file; "" when it does not exist yet.
func (e *env) stateBytes() []byte {
	e.t.Helper()
	b, err := os.ReadFile(e.statePath)
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	return b
}

// lookupA asks the node's DNS server for name's A records.
func (e *env) lookupA(name string) []string {
	e.t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(m, e.n.Addr("dns/0").String())
	if err != nil {
		e.t.Fatalf("dns query %s: %v", name, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		e.t.Fatalf("dns query %s: rcode %s", name, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func (e *env) wantAnswer(name, want string) {
	e.t.Helper()
	got := e.lookupA(name)
	if len(got) != 1 || got[0] != want {
		e.t.Fatalf("A %s = %v, want [%s]", name, got, want)
	}
}

// metric reads one sample of the node's /metrics, with no token.
func (e *env) metric(series string) float64 {
	e.t.Helper()
	r := e.do(http.MethodGet, "/metrics", "", "")
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /metrics: %d", r.status)
	}
	for line := range bytes.Lines(r.body) {
		s := strings.TrimSpace(string(line))
		if v, ok := strings.CutPrefix(s, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	e.t.Fatalf("metric %s not found in /metrics", series)
	return 0
}
