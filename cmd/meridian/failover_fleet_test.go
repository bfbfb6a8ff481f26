package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/internal/etcdtest"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// foFleet is three meridian processes sharing a real etcd, steering
// service api between two upstream regions, us-east (the configured
// writes primary) and eu-west, with lag and promote hooks.
type foFleet struct {
	nodes      []*fleetNode
	east, west *regionSrv
	hooks      *hooks
}

// startFoFleet starts the fleet; failover is the service's failover block
// (YAML flow map).
func startFoFleet(t *testing.T, failover string) *foFleet {
	t.Helper()
	return startFoFleetWith(t, failover, -1)
}

// startFoFleetWith starts the fleet with node blind (an index; -1: none)
// checking us-east's health on /health/blind, which fails while
// f.east.blind is set. With an auto rule the first node takes the
// failover lock before the others start.
func startFoFleetWith(t *testing.T, failover string, blind int) *foFleet {
	t.Helper()
	t.Setenv("MERIDIAN_FLEET_TEST_TOKEN", fleetToken)
	etcd := etcdtest.Start(t)
	f := &foFleet{east: newRegionSrv(t, "us-east"), west: newRegionSrv(t, "eu-west"), hooks: newHooks(t)}
	f.hooks.setLag("us-east", `{"lag_seconds": 0}`)
	f.hooks.setLag("eu-west", `{"lag_seconds": 0.2}`)
	region := func(r *regionSrv, addr, path string) string {
		return fmt.Sprintf(`
  - name: %s
    endpoints: [{address: %s, url: "%s"}]
    health: {path: %s, interval: 100ms, timeout: 2s, rise: 1, fall: 2}
    replication: {lag_url: "%s/lag?region=%s", interval: 100ms}
    promote: {url: "%s/promote?region=%s", timeout: 10s}`, r.name, addr, r.url, path, f.hooks.url, r.name, f.hooks.url, r.name)
	}
	dir := t.TempDir()
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		eastPath := "/health/ready"
		if i == blind {
			eastPath = "/health/blind"
		}
		ports := freePorts(t, 3)
		n := &fleetNode{name: name, admin: fmt.Sprintf("127.0.0.1:%d", ports[0]), dns: fmt.Sprintf("127.0.0.1:%d", ports[1]),
			cfg: filepath.Join(dir, name+".yaml")}
		text := fmt.Sprintf(`node: {name: %s, addresses: [127.0.0.1], drain: 0s, shutdown_timeout: 2s}
listen: {dns: ["%s"], http: ["127.0.0.1:%d"], admin: "%s"}
admin: {tokens: [{name: ops, role: write, secret_env: MERIDIAN_FLEET_TEST_TOKEN}]}
state: {backend: etcd, path: %s, etcd: {endpoints: ["%s"], prefix: /fo-fleet/, dial_timeout: 1s}}
fleet: {node_ttl: 2s, health: quorum}
regions:%s%s
zones:
  - name: example.test
    nameservers: [ns1.example.test]
services:
  - name: api
    hostnames: [api.example.test]
    mode: proxy
    policy: failover
    regions: [us-east, eu-west]
    proxy: {retries: 2, connect_timeout: 500ms, timeout: 5s}
    writes: {primary: us-east}
    failover: %s
`, name, n.dns, ports[2], n.admin, filepath.Join(dir, name+"-state.json"), etcd.Endpoint,
			region(f.east, "192.0.2.1", eastPath), region(f.west, "192.0.2.2", "/health/ready"), failover)
		if err := os.WriteFile(n.cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		n.start(t)
		f.nodes = append(f.nodes, n)
		if i == 0 && strings.Contains(failover, "auto: true") {
			poll(t, 20*time.Second, n.name+" to take the failover lock", func() bool { return len(failoverRunners(f.nodes)) == 1 })
		}
	}
	poll(t, 10*time.Second, "all three listed", func() bool { return len(f.nodes[0].nodes(t)) == 3 })
	return f
}

// failovers lists service api's failovers as node n sees them, newest
// first.
func (n *fleetNode) failovers(t *testing.T) []state.Failover {
	t.Helper()
	var body admin.FailoversBody
	if n.status(t, http.MethodGet, "/v1/services/api/failovers", "", &body) != http.StatusOK {
		return nil
	}
	return body.Failovers
}

func (n *fleetNode) failover(t *testing.T, id string) (state.Failover, bool) {
	t.Helper()
	for _, f := range n.failovers(t) {
		if f.ID == id {
			return f, true
		}
	}
	return state.Failover{}, false
}

// failoverRunners returns the nodes (of those given) that logged taking the
// failover lock.
func failoverRunners(nodes []*fleetNode) []*fleetNode {
	var out []*fleetNode
	for _, n := range nodes {
		if strings.Contains(n.child.stderr.String(), `"running failovers"`) {
			out = append(out, n)
		}
	}
	return out
}

// auditOf returns the audit entries (up to 200) as node n sees them.
func auditOf(t *testing.T, n *fleetNode) []state.AuditEntry {
	t.Helper()
	var body admin.AuditBody
	n.status(t, http.MethodGet, "/v1/audit?limit=200", "", &body)
	return body.Entries
}

// metricsText returns the node's /metrics page ("" when unreachable).
func (n *fleetNode) metricsText() string {
	resp, err := http.Get("http://" + n.admin + "/metrics")
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func without(nodes []*fleetNode, x *fleetNode) []*fleetNode {
	var out []*fleetNode
	for _, n := range nodes {
		if n != x {
			out = append(out, n)
		}
	}
	return out
}

// TestFleetFailoverTakeover: a failover started through one node's API is
// run by one node of three, every node sees its steps, and when its runner
// is killed during the traffic step another node completes it; the
// promote hook is called once in all.
func TestFleetFailoverTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	fl := startFoFleet(t, "{rpo: 1s, max_wait: 5s, hold: 2s}")
	a := fl.nodes[0]
	var f state.Failover
	if code := a.status(t, http.MethodPost, "/v1/services/api/failovers",
		`{"to": "eu-west", "force": true, "reason": "fleet failover test"}`, &f); code != http.StatusCreated {
		t.Fatalf("start failover on %s: %d", a.name, code)
	}
	var runner *fleetNode
	poll(t, 20*time.Second, "a node to run the failover", func() bool {
		rs := failoverRunners(fl.nodes)
		if len(rs) > 1 {
			t.Fatalf("%d nodes run failovers at once", len(rs))
		}
		if len(rs) == 1 {
			runner = rs[0]
		}
		return runner != nil
	})
	// Every node sees the failover reach the traffic step.
	for _, n := range fl.nodes {
		poll(t, 20*time.Second, n.name+" to see the traffic step", func() bool {
			g, ok := n.failover(t, f.ID)
			if ok && g.State != state.FailoverRunning {
				t.Fatalf("%s: failover %s before the kill: %s", n.name, g.State, g.Outcome)
			}
			return ok && g.Step == state.StepTraffic && g.Shift != ""
		})
	}
	if p := fl.hooks.promotions("eu-west"); p != 1 {
		t.Fatalf("eu-west promoted %d times before the kill, want 1", p)
	}
	if rs := failoverRunners(fl.nodes); len(rs) != 1 {
		t.Fatalf("%d nodes ran failovers, want 1", len(rs))
	}
	others := without(fl.nodes, runner)
	if err := runner.child.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var took time.Duration
	poll(t, 30*time.Second, "another node to take the failovers over", func() bool {
		if len(failoverRunners(others)) > 0 {
			took = time.Since(killed)
			return true
		}
		return false
	})
	var done state.Failover
	poll(t, 40*time.Second, "the failover to end", func() bool {
		g, ok := others[0].failover(t, f.ID)
		done = g
		return ok && g.State != state.FailoverRunning
	})
	doneAfter := time.Since(killed)
	if done.State != state.FailoverDone {
		t.Fatalf("failover after the takeover: %s: %s", done.State, done.Outcome)
	}
	if p := fl.hooks.promotions("eu-west"); p != 1 {
		t.Fatalf("eu-west promoted %d times, want 1", p)
	}
	for _, n := range others {
		poll(t, 5*time.Second, n.name+" to serve the reads from eu-west", func() bool {
			return n.dial(t, "us-east") == 0 || n.dial(t, "eu-west") == 100
		})
		poll(t, 5*time.Second, n.name+" to see the failover done", func() bool {
			g, _ := n.failover(t, f.ID)
			return g.State == state.FailoverDone
		})
	}
	// Who took which step: the killed runner the early ones, one other
	// node the end.
	by := map[string]string{}
	for _, e := range auditOf(t, others[0]) {
		if e.Action == "failover.promote" || e.Action == "failover.done" {
			by[e.Action] = e.Node
		}
	}
	if by["failover.promote"] != runner.name || by["failover.done"] == "" || by["failover.done"] == runner.name {
		t.Errorf("promote by %q, done by %q; want the killed runner %s, then another node", by["failover.promote"], by["failover.done"], runner.name)
	}
	t.Logf("failover runner %s killed in the traffic step: another node took the failovers over after %v (node_ttl 2s); the failover was done %v after the kill, rto %.3fs",
		runner.name, took.Round(time.Millisecond), doneAfter.Round(time.Millisecond), *done.RTOSeconds)
}

// TestFleetFailoverKilledInPromote: the runner dies while the promote hook
// is in flight; the node that takes over does not call it again and stops
// the failover for an operator.
func TestFleetFailoverKilledInPromote(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	fl := startFoFleet(t, "{rpo: 1s, max_wait: 5s, hold: 1s}")
	fl.hooks.delay.Store(int64(30 * time.Second))
	var f state.Failover
	if code := fl.nodes[1].status(t, http.MethodPost, "/v1/services/api/failovers",
		`{"to": "eu-west", "force": true, "reason": "fleet promote test"}`, &f); code != http.StatusCreated {
		t.Fatalf("start failover: %d", code)
	}
	poll(t, 20*time.Second, "the promote hook to be called", func() bool { return fl.hooks.promotions("eu-west") == 1 })
	rs := failoverRunners(fl.nodes)
	if len(rs) != 1 {
		t.Fatalf("%d nodes run failovers, want 1", len(rs))
	}
	if err := rs[0].child.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	others := without(fl.nodes, rs[0])
	var g state.Failover
	poll(t, 30*time.Second, "the failover to end", func() bool {
		var ok bool
		g, ok = others[0].failover(t, f.ID)
		return ok && g.State != state.FailoverRunning
	})
	if g.State != state.FailoverNeedsAttention || !strings.Contains(g.Outcome, "promote hook") {
		t.Fatalf("failover whose runner died in promote: %s: %s", g.State, g.Outcome)
	}
	if p := fl.hooks.promotions("eu-west"); p != 1 {
		t.Fatalf("eu-west promoted %d times, want 1", p)
	}
}

// TestFleetAutoFailover: with failover.auto, three nodes that all see the
// writes primary go down start one failover between them.
func TestFleetAutoFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	fl := startFoFleet(t, "{rpo: 1s, max_wait: 5s, hold: 1s, auto: true, after: 1s}")
	poll(t, 20*time.Second, "one node to hold the failover runner's lock", func() bool { return len(failoverRunners(fl.nodes)) == 1 })
	killed := time.Now()
	fl.east.healthy.Store(false)
	var f state.Failover
	poll(t, 20*time.Second, "an auto failover", func() bool {
		list := fl.nodes[2].failovers(t)
		if len(list) > 0 {
			f = list[0]
		}
		return f.ID != ""
	})
	if f.Auto != "failover" || f.To != "eu-west" {
		t.Fatalf("auto failover: %+v", f)
	}
	id := f.ID
	poll(t, 30*time.Second, "the auto failover to end", func() bool {
		var ok bool
		f, ok = fl.nodes[0].failover(t, id)
		return ok && f.State != state.FailoverRunning
	})
	seen := time.Now()
	if f.State != state.FailoverDone || f.RTOSeconds == nil {
		t.Fatalf("auto failover: %s: %s", f.State, f.Outcome)
	}
	// Long enough for a second start to show, had another node tried.
	time.Sleep(2 * time.Second)
	for _, n := range fl.nodes {
		if list := n.failovers(t); len(list) != 1 {
			t.Errorf("%s lists %d failovers, want 1", n.name, len(list))
		}
	}
	starts := 0
	for _, e := range auditOf(t, fl.nodes[1]) {
		if e.Action == "failover.start" {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("%d failover.start audit entries, want 1", starts)
	}
	if p := fl.hooks.promotions("eu-west"); p != 1 {
		t.Errorf("eu-west promoted %d times, want 1", p)
	}
	if rs := failoverRunners(fl.nodes); len(rs) != 1 {
		t.Errorf("%d nodes ran failovers, want 1", len(rs))
	}
	// after (1s) + 3 holds of 1s, plus up to 2.5s.
	if *f.RTOSeconds < 4 || *f.RTOSeconds > 7 {
		t.Errorf("auto failover rto %.3fs, want 4s..7s", *f.RTOSeconds)
	}
	t.Logf("fleet auto failover (after 1s, 1s holds): RTO by meridian %.3fs, by the test's clock %.3fs (primary down to seen done)",
		*f.RTOSeconds, seen.Sub(killed).Seconds())
}

// TestFleetAutoFailoverQuorum: under fleet.health quorum the auto rule and
// the impact time follow the fleet's verdict, not the runner's own view: a
// runner that alone cannot reach the writes primary starts no failover,
// and when the whole fleet sees the primary down, the impact time is when
// the fleet did, not when the runner first lost it.
func TestFleetAutoFailoverQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	fl := startFoFleetWith(t, "{rpo: 1s, max_wait: 5s, hold: 1s, auto: true, after: 1s}", 0)
	runner := fl.nodes[0]
	if rs := failoverRunners(fl.nodes); len(rs) != 1 || rs[0] != runner {
		t.Fatalf("failover runners %d, want %s alone", len(rs), runner.name)
	}
	poll(t, 20*time.Second, "all three nodes to report their region views", func() bool {
		var body admin.NodesBody
		if runner.status(t, http.MethodGet, "/v1/nodes", "", &body) != http.StatusOK || len(body.Nodes) != 3 {
			return false
		}
		for _, m := range body.Nodes {
			if len(m.Regions) == 0 {
				return false
			}
		}
		return true
	})
	fl.east.blind.Store(true)
	poll(t, 20*time.Second, runner.name+" to see us-east down and the fleet see it up", func() bool {
		m := runner.metricsText()
		return strings.Contains(m, `meridian_region_up{region="us-east"} 0`) &&
			strings.Contains(m, `meridian_region_up_fleet{region="us-east"} 0.66`)
	})
	// Four times failover.after.
	time.Sleep(4 * time.Second)
	for _, n := range fl.nodes {
		if list := n.failovers(t); len(list) != 0 {
			t.Fatalf("%s lists a failover %s (%s) while only %s sees us-east down", n.name, list[0].ID, list[0].Reason, runner.name)
		}
	}
	downAt := time.Now()
	fl.east.healthy.Store(false)
	var f state.Failover
	poll(t, 20*time.Second, "an auto failover", func() bool {
		list := fl.nodes[1].failovers(t)
		if len(list) > 0 {
			f = list[0]
		}
		return f.ID != ""
	})
	if f.ImpactAt.Before(downAt) {
		t.Errorf("impact at %s, before the fleet saw us-east down (%s): the runner's own view", f.ImpactAt, downAt)
	}
	if f.Created.Sub(downAt) < time.Second {
		t.Errorf("auto failover started %s after us-east went down, before failover.after 1s", f.Created.Sub(downAt))
	}
	id := f.ID
	poll(t, 30*time.Second, "the auto failover to end", func() bool {
		var ok bool
		f, ok = fl.nodes[2].failover(t, id)
		return ok && f.State != state.FailoverRunning
	})
	if f.State != state.FailoverDone {
		t.Fatalf("auto failover: %s: %s", f.State, f.Outcome)
	}
}

// TestFleetDrill: a drill started through one node is ended by the one
// node running failovers, once, and every node sees the region's override
// put back.
func TestFleetDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	fl := startFoFleet(t, "{rpo: 1s, hold: 1s}")
	var dr state.Drill
	if code := fl.nodes[2].status(t, http.MethodPost, "/v1/services/api/drills",
		`{"region": "us-east", "duration": "2s", "reason": "fleet drill test"}`, &dr); code != http.StatusCreated {
		t.Fatalf("start drill: %d", code)
	}
	poll(t, 30*time.Second, "the drill to end", func() bool {
		var body admin.DrillsBody
		if fl.nodes[0].status(t, http.MethodGet, "/v1/services/api/drills", "", &body) != http.StatusOK {
			return false
		}
		for _, d := range body.Drills {
			if d.ID == dr.ID {
				dr = d
			}
		}
		return dr.State != state.DrillRunning
	})
	if dr.State != state.DrillDone {
		t.Fatalf("drill: %s: %s", dr.State, dr.Outcome)
	}
	if rs := failoverRunners(fl.nodes); len(rs) != 1 {
		t.Fatalf("%d nodes ran the drill, want 1", len(rs))
	}
	var ends []string
	poll(t, 5*time.Second, "the drill's end in the audit log", func() bool {
		ends = nil
		for _, e := range auditOf(t, fl.nodes[1]) {
			if e.Action == "drill.done" {
				ends = append(ends, e.Node)
			}
		}
		return len(ends) > 0
	})
	if len(ends) != 1 {
		t.Fatalf("drill.done entries by %v, want one", ends)
	}
	for _, n := range fl.nodes {
		poll(t, 5*time.Second, n.name+" to serve us-east again", func() bool {
			o := n.overrideOf(t, "us-east")
			return o == "" || o == "auto"
		})
	}
}

// overrideOf reads a region's override of service api as node n serves
// it ("?" when unreadable).
func (n *fleetNode) overrideOf(t *testing.T, region string) string {
	t.Helper()
	var sv node.ServiceView
	if n.status(t, http.MethodGet, "/v1/services/api", "", &sv) != http.StatusOK {
		return "?"
	}
	for _, r := range sv.Regions {
		if r.Name == region {
			return r.Override
		}
	}
	return "?"
}
