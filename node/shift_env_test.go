package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/state"
)

// shiftUpstream is a region's endpoint whose health checks and whose
// answers to proxied requests fail independently.
type shiftUpstream struct {
	srv  *httptest.Server
	down atomic.Bool // health checks fail
	fail atomic.Bool // proxied requests get 500
	hits atomic.Int64
}

func newShiftUpstream(t *testing.T, name string) *shiftUpstream {
	t.Helper()
	u := &shiftUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health/ready" {
			if u.down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		u.hits.Add(1)
		if u.fail.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, name+"\n")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// shiftConfig has two regions, green (parked at dial 0, first in failover
// order, so raising its dial moves clients onto it) and blue, serving a
// proxy-mode service web and a dns-mode service api.
const shiftConfig = `
node: {name: shift-node, addresses: [127.0.0.1], drain: 0s, shutdown_timeout: 2s}
listen:
  http: ["127.0.0.1:0"]
  admin: "127.0.0.1:0"
state: {path: {{STATE}}}
regions:
  - name: green
    endpoints: [{address: 192.0.2.1, url: "{{green}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 1, fall: 1}
  - name: blue
    endpoints: [{address: 192.0.2.2, url: "{{blue}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 1, fall: 1}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
    records: ["ns1 3600 A 127.0.0.1"]
services:
  - name: web
    hostnames: [web.example.test]
    mode: proxy
    policy: failover
    regions: [green, blue]
    dials: {green: 0}
    proxy: {trusted_proxies: [127.0.0.0/8]}
  - name: api
    hostnames: [api.example.test]
    mode: dns
    policy: failover
    regions: [green, blue]
    dials: {green: 0}
`

// shiftEnv is a node started from a config file and state file that
// outlive it, so that a test can restart it.
type shiftEnv struct {
	t    *testing.T
	path string
	ups  map[string]*shiftUpstream
	n    *Node
}

func newShiftEnv(t *testing.T) *shiftEnv {
	t.Helper()
	dir := t.TempDir()
	e := &shiftEnv{t: t, path: filepath.Join(dir, "meridian.yaml"), ups: map[string]*shiftUpstream{}}
	text := strings.ReplaceAll(shiftConfig, "{{STATE}}", filepath.Join(dir, "state.json"))
	for _, r := range []string{"green", "blue"} {
		e.ups[r] = newShiftUpstream(t, r)
		text = strings.ReplaceAll(text, "{{"+r+"}}", e.ups[r].srv.URL)
	}
	if err := os.WriteFile(e.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

// start starts a node on the env's files and waits for both regions.
func (e *shiftEnv) start() {
	t := e.t
	t.Helper()
	n := startFromFile(t, e.path)
	e.n = n
	waitFor(t, 3*time.Second, "both regions up", func() bool {
		v := n.View()
		return v.Policy.Regions[0].Up && v.Policy.Regions[1].Up
	})
}

func (e *shiftEnv) stop() {
	if e.n != nil {
		_ = e.n.Close()
		e.n = nil
	}
}

// load sends GETs for host through the node's http listener from 4
// workers, each request from another client network (X-Forwarded-For,
// trusted from loopback), until stop is called, 8s pass or 20000 requests
// were sent. stop returns the count of answers by status.
func (e *shiftEnv) load(host string) (stop func() map[int]int) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	url := "http://" + e.n.Addr("http/0").String() + "/"
	var (
		sent   atomic.Int64
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := sent.Add(1)
				if i > 20000 {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return
				}
				req.Host = host
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.7", i/256%256, i%256))
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				mu.Lock()
				counts[resp.StatusCode]++
				mu.Unlock()
				time.Sleep(time.Millisecond) // pace: the machine is shared
			}
		})
	}
	return func() map[int]int {
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
		mu.Lock()
		defer mu.Unlock()
		return counts
	}
}

// shift returns the node's view of one shift.
func (e *shiftEnv) shift(service, id string) state.Shift {
	e.t.Helper()
	list, err := e.n.Shifts(service)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, sh := range list {
		if sh.ID == id {
			return sh
		}
	}
	e.t.Fatalf("shift %s of %s not listed", id, service)
	return state.Shift{}
}

// waitEnded waits for a shift to leave the running state.
func (e *shiftEnv) waitEnded(service, id string, within time.Duration) state.Shift {
	e.t.Helper()
	waitFor(e.t, within, "shift "+id+" to end", func() bool { return e.shift(service, id).State != state.ShiftRunning })
	return e.shift(service, id)
}

func (e *shiftEnv) dial(service, region string) int {
	e.t.Helper()
	sv, err := e.n.Service(service)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range sv.Regions {
		if r.Name == region {
			return r.Dial
		}
	}
	e.t.Fatalf("service %s has no region %s", service, region)
	return 0
}

// actions lists the audit entries of shift actions, oldest first, as
// "action old→new".
func (e *shiftEnv) actions() []string {
	var out []string
	entries := e.n.Audit(1000)
	for i := len(entries) - 1; i >= 0; i-- {
		if a := entries[i]; strings.HasPrefix(a.Action, "shift.") {
			out = append(out, a.Action+" "+a.Old+"→"+a.New)
		}
	}
	return out
}

// gauge reads one sample of a metric family by its labels.
func (e *shiftEnv) gauge(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.n.Registry().Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	e.t.Fatalf("no sample of %s%v", name, labels)
	return 0
}
