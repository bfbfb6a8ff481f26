package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/meridian-edge/meridian/config"
)

// upstream is a region's endpoint: a real HTTP server whose health can be
// flipped.
type upstream struct {
	name string
	srv  *httptest.Server
	down atomic.Bool
	hits atomic.Int64
	// failed counts the health probes answered 503 while down.
	failed atomic.Int64
}

func newUpstream(t *testing.T, name string) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.down.Load() {
			if r.URL.Path == "/health/ready" {
				u.failed.Add(1)
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/health/ready" {
			u.hits.Add(1)
		}
		fmt.Fprintf(w, "%s\n", u.name)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// testNode is a node started from a config file in a temp dir, with three
// regions whose endpoints answer A 192.0.2.1 (us-east), 192.0.2.2
// (eu-west) and 192.0.2.3 (ap-south).
type testNode struct {
	*Node
	path string
	ups  map[string]*upstream
}

const baseConfig = `
node:
  name: test-node
  addresses: [127.0.0.1]
  drain: 50ms
  shutdown_timeout: 2s
listen:
  dns: ["127.0.0.1:0"]
  http: ["127.0.0.1:0"]
  admin: "127.0.0.1:0"
state:
  path: {{STATE}}
regions:
  - name: us-east
    location: {lat: 38.9, lon: -77.4}
    endpoints: [{address: 192.0.2.1, url: "{{us-east}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 2, fall: 2}
  - name: eu-west
    location: {lat: 53.3, lon: -6.3}
    endpoints: [{address: 192.0.2.2, url: "{{eu-west}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 2, fall: 2}
  - name: ap-south
    location: {lat: 19.1, lon: 72.9}
    endpoints: [{address: 192.0.2.3, url: "{{ap-south}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 2, fall: 2}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
    records: ["ns1 3600 A 127.0.0.1"]
services:
  - name: api
    hostnames: [api.example.test]
    policy: failover
    regions: [us-east, eu-west, ap-south]
    ttl: 30s
    ttl_degraded: 5s
  - name: web
    hostnames: [web.example.test]
    mode: proxy
    policy: failover
    regions: [us-east, eu-west, ap-south]
`

func startNode(t *testing.T, extra string) *testNode {
	t.Helper()
	dir := t.TempDir()
	tn := &testNode{path: filepath.Join(dir, "meridian.yaml"), ups: map[string]*upstream{}}
	text := baseConfig + extra
	text = strings.ReplaceAll(text, "{{STATE}}", filepath.Join(dir, "state.json"))
	for _, r := range []string{"us-east", "eu-west", "ap-south"} {
		tn.ups[r] = newUpstream(t, r)
		text = strings.ReplaceAll(text, "{{"+r+"}}", tn.ups[r].srv.URL)
	}
	tn.write(t, text)
	n := startFromFile(t, tn.path)
	t.Cleanup(func() { _ = n.Close() })
	tn.Node = n
	waitFor(t, 3*time.Second, "node ready", n.Ready)
	return tn
}

// startFromFile starts a node from a config file; the caller closes it.
func startFromFile(t *testing.T, path string) *Node {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	n, err := New(cfg, Options{Logger: log, ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

func (tn *testNode) write(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(tn.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// query asks the node's DNS listener.
func (tn *testNode) query(t *testing.T, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, tn.Addr("dns/0").String())
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r
}

// answerA returns the A records' addresses of an answer, joined.
func answerA(r *dns.Msg) string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return strings.Join(out, ",")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustGather(t *testing.T, tn *testNode) []*dto.MetricFamily {
	t.Helper()
	mfs, err := tn.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
