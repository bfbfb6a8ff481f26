package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/etcdtest"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// The fleet tests run real meridian processes sharing a real etcd.

const fleetToken = "fleet-test-secret" //nolint:gosec // a test token

// fleetNode is one meridian process of a test fleet.
type fleetNode struct {
	name, admin, dns string
	cfg              string
	child            *child

	dir, etcd, upstream string // to write the config again
	opts                fleetOpts
}

// fleetOpts are what differs between the nodes of a test fleet.
type fleetOpts struct {
	health  string // fleet.health; default local
	usPath  string // health path of region us; default /ok (/bad fails)
	prefix  string // default /fleet-test/
	nodeTTL string // default 2s
}

// fleetUpstream answers /ok with 200, /bad with 503 and anything else with
// 200 "hello from the upstream".
func fleetUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bad":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = io.WriteString(w, "hello from the upstream")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// writeFleetConfig writes the config of node name in dir.
func writeFleetConfig(t *testing.T, dir, name, etcd, upstream string, o fleetOpts) *fleetNode {
	t.Helper()
	if o.health == "" {
		o.health = "local"
	}
	if o.usPath == "" {
		o.usPath = "/ok"
	}
	if o.prefix == "" {
		o.prefix = "/fleet-test/"
	}
	if o.nodeTTL == "" {
		o.nodeTTL = "2s"
	}
	n := &fleetNode{
		name:  name,
		admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		dns:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		cfg:   filepath.Join(dir, name+".yaml"),
		dir:   dir, etcd: etcd, upstream: upstream, opts: o,
	}
	text := fmt.Sprintf(`node: {name: %s, addresses: [127.0.0.1], drain: 100ms, shutdown_timeout: 2s}
listen: {dns: ["%s"], http: ["127.0.0.1:%d"], admin: "%s"}
admin: {tokens: [{name: ops, role: write, secret_env: MERIDIAN_FLEET_TEST_TOKEN}]}
state: {backend: etcd, path: %s, etcd: {endpoints: ["%s"], prefix: %s, dial_timeout: 1s}}
fleet: {node_ttl: %s, health: %s}
regions:
  - name: us
    endpoints: [{address: 192.0.2.10, url: "%s"}]
    health: {path: %s, interval: 200ms, timeout: 500ms, rise: 1, fall: 1}
  - name: eu
    endpoints: [{address: 192.0.2.20, url: "%s"}]
    health: {path: /ok, interval: 200ms, timeout: 500ms, rise: 1, fall: 1}
zones:
  - {name: fleet.test, nameservers: [ns1.fleet.test], records: ["ns1 3600 A 127.0.0.1"]}
services:
  - {name: api, hostnames: [api.fleet.test], mode: dns, policy: failover, regions: [us, eu], ttl: 5s}
  - name: web
    hostnames: [web.fleet.test]
    mode: proxy
    policy: failover
    regions: [us, eu]
    proxy: {retries: 0}
`, name, n.dns, freePort(t), n.admin, filepath.Join(dir, name+"-state.json"), etcd, o.prefix, o.nodeTTL, o.health,
		upstream, o.usPath, upstream)
	if err := os.WriteFile(n.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// moved writes the node's config again with new listen ports (the old
// ones may be taken by now) and the same state path.
func (n *fleetNode) moved(t *testing.T) *fleetNode {
	t.Helper()
	return writeFleetConfig(t, n.dir, n.name, n.etcd, n.upstream, n.opts)
}

// start runs the node and waits until it is ready.
func (n *fleetNode) start(t *testing.T) {
	t.Helper()
	n.child = startChild(t, "run", "--config", n.cfg)
	poll(t, 30*time.Second, n.name+" ready", func() bool {
		select {
		case err := <-n.child.exited:
			n.child.exited <- err
			t.Fatalf("%s exited: %v\n%s", n.name, err, n.child.stderr.String())
		default:
		}
		return n.status(t, http.MethodGet, "/health/ready", "", nil) == http.StatusOK
	})
}

// startFleet starts count nodes named n1, n2 … sharing etcd.
func startFleet(t *testing.T, count int, etcd string, opts func(i int) fleetOpts) []*fleetNode {
	t.Helper()
	t.Setenv("MERIDIAN_FLEET_TEST_TOKEN", fleetToken)
	up := fleetUpstream(t)
	dir := t.TempDir()
	nodes := make([]*fleetNode, count)
	for i := range nodes {
		var o fleetOpts
		if opts != nil {
			o = opts(i)
		}
		nodes[i] = writeFleetConfig(t, dir, fmt.Sprintf("n%d", i+1), etcd, up.URL, o)
		nodes[i].start(t)
	}
	return nodes
}

// call sends an admin request; out, when not nil, receives the JSON body.
func (n *fleetNode) call(t *testing.T, method, path, body string, hdr map[string]string, out any) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+fleetToken)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, resp.Header
}

func (n *fleetNode) status(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	code, _ := n.call(t, method, path, body, nil, out)
	return code
}

// dial reads a region's dial of service api as the node serves it.
func (n *fleetNode) dial(t *testing.T, region string) int {
	t.Helper()
	var sv node.ServiceView
	if n.status(t, http.MethodGet, "/v1/services/api", "", &sv) != http.StatusOK {
		return -1
	}
	for _, r := range sv.Regions {
		if r.Name == region {
			return r.Dial
		}
	}
	return -1
}

func (n *fleetNode) nodes(t *testing.T) []string {
	t.Helper()
	var body admin.NodesBody
	if n.status(t, http.MethodGet, "/v1/nodes", "", &body) != http.StatusOK {
		return nil
	}
	var names []string
	for _, m := range body.Nodes {
		names = append(names, m.Name)
	}
	return names
}

// answer asks the node's DNS for api.fleet.test and returns the addresses.
func (n *fleetNode) answer(t *testing.T) ([]string, error) {
	t.Helper()
	c := &dns.Client{Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion("api.fleet.test.", dns.TypeA)
	r, _, err := c.Exchange(m, n.dns)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, nil
}

func setDialBody(region string, d int) string {
	return fmt.Sprintf(`{"dials": {%q: %d}, "reason": "fleet test"}`, region, d)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s)-1) + 0.5)
	return s[i]
}

// TestFleetPropagation changes a dial 100 times, each time on another node,
// and measures how long the two other nodes take to serve it.
func TestFleetPropagation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	etcd := etcdtest.Start(t)
	nodes := startFleet(t, 3, etcd.Endpoint, nil)
	var lat []time.Duration
	for i := range 100 {
		from := nodes[i%3]
		d := i % 101
		if code := from.status(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("eu", d), nil); code != http.StatusOK {
			t.Fatalf("change %d on %s: status %d", i, from.name, code)
		}
		start := time.Now()
		for _, to := range nodes {
			if to == from {
				continue
			}
			poll(t, 10*time.Second, "propagation to "+to.name, func() bool { return to.dial(t, "eu") == d })
		}
		lat = append(lat, time.Since(start))
	}
	p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
	t.Logf("propagation over %d changes (both other nodes serving it): p50 %v, p99 %v, max %v",
		len(lat), p50.Round(time.Millisecond), p99.Round(time.Millisecond), slices.Max(lat).Round(time.Millisecond))
	if p99 > time.Second {
		t.Errorf("p99 propagation %v, want at most 1s", p99)
	}
}

// TestFleetIfMatch: an ETag read on one node is refused on another once
// a third changed the service, however fresh the second's view is.
func TestFleetIfMatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	etcd := etcdtest.Start(t)
	nodes := startFleet(t, 3, etcd.Endpoint, nil)
	var sv node.ServiceView
	code, hdr := nodes[0].call(t, http.MethodGet, "/v1/services/api", "", nil, &sv)
	etag := hdr.Get("ETag")
	if code != http.StatusOK || etag == "" {
		t.Fatalf("GET on n1: %d, etag %q", code, etag)
	}
	// Same state, same ETag on every node.
	for _, n := range nodes[1:] {
		if _, h := n.call(t, http.MethodGet, "/v1/services/api", "", nil, nil); h.Get("ETag") != etag {
			t.Fatalf("%s ETag %q, n1 %q", n.name, h.Get("ETag"), etag)
		}
	}
	if code := nodes[1].status(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("eu", 40), nil); code != http.StatusOK {
		t.Fatalf("change on n2: %d", code)
	}
	// At once, before n3 may have seen n2's change.
	var e map[string]string
	code, _ = nodes[2].call(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("eu", 10), map[string]string{"If-Match": etag}, &e)
	if code != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match on n3: status %d %v, want 412", code, e)
	}
	poll(t, 5*time.Second, "n3 to serve n2's dial", func() bool { return nodes[2].dial(t, "eu") == 40 })
	_, hdr = nodes[2].call(t, http.MethodGet, "/v1/services/api", "", nil, nil)
	if code := nodes[0].status(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("eu", 10), nil); code != http.StatusOK {
		t.Fatalf("change on n1: %d", code)
	}
	_ = hdr
	code, _ = nodes[2].call(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("eu", 5), map[string]string{"If-Match": hdr.Get("ETag")}, nil)
	if code != http.StatusPreconditionFailed {
		t.Fatalf("If-Match read on n3 before n1's change: status %d, want 412", code)
	}
	// A current ETag is taken.
	poll(t, 5*time.Second, "n3 to serve n1's dial", func() bool { return nodes[2].dial(t, "eu") == 10 })
	_, hdr = nodes[2].call(t, http.MethodGet, "/v1/services/api", "", nil, nil)
	code, _ = nodes[2].call(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("eu", 5), map[string]string{"If-Match": hdr.Get("ETag")}, nil)
	if code != http.StatusOK {
		t.Fatalf("current If-Match on n3: status %d, want 200", code)
	}
}

// TestFleetMembership: three nodes list each other; a second node with a
// live name refuses to start naming it; a killed node leaves the list
// within node_ttl + 1s.
func TestFleetMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	etcd := etcdtest.Start(t)
	nodes := startFleet(t, 3, etcd.Endpoint, nil)
	want := []string{"n1", "n2", "n3"}
	poll(t, 10*time.Second, "every node to list all three, ready", func() bool {
		for _, n := range nodes {
			var body admin.NodesBody
			if n.status(t, http.MethodGet, "/v1/nodes", "", &body) != http.StatusOK || len(body.Nodes) != 3 {
				return false
			}
			for i, m := range body.Nodes {
				if m.Name != want[i] || !m.Ready {
					return false
				}
			}
		}
		return true
	})
	var out bytes.Buffer
	if code := run([]string{"ctl", "--admin", "http://" + nodes[0].admin, "--token", fleetToken, "nodes"}, &out, &out); code != 0 {
		t.Fatalf("ctl nodes: exit %d: %s", code, out.String())
	}
	for _, w := range []string{"NAME", "n1", "n2", "n3", "yes"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("ctl nodes output lacks %q:\n%s", w, out.String())
		}
	}

	// Same name again: refused, naming it.
	dup := writeFleetConfig(t, t.TempDir(), "n2", etcd.Endpoint, "http://127.0.0.1:1", fleetOpts{})
	c := startChild(t, "run", "--config", dup.cfg)
	select {
	case err := <-c.exited:
		c.exited <- err
		if err == nil || !strings.Contains(c.stderr.String(), `node name already live in the fleet: \"n2\"`) {
			t.Fatalf("duplicate name: exit %v, stderr:\n%s", err, c.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a node with a live name is still running after 30s")
	}

	// SIGKILL n3: it leaves within node_ttl (2s) + 1s.
	if err := nodes[2].child.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	poll(t, 10*time.Second, "n3 to leave", func() bool {
		return slices.Equal(nodes[0].nodes(t), want[:2]) && slices.Equal(nodes[1].nodes(t), want[:2])
	})
	left := time.Since(killed)
	t.Logf("a SIGKILLed node left the list after %v (node_ttl 2s)", left.Round(time.Millisecond))
	if left > 3*time.Second {
		t.Errorf("n3 left after %v, want at most node_ttl + 1s = 3s", left)
	}
}

// TestFleetEtcdOutage stops etcd under DNS load: every query is answered,
// changes are refused with 503 and the status says since when; after etcd
// is back the nodes resynchronise and take changes again.
func TestFleetEtcdOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	etcd := etcdtest.Start(t)
	nodes := startFleet(t, 3, etcd.Endpoint, nil)
	if code := nodes[0].status(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("us", 0), nil); code != http.StatusOK {
		t.Fatalf("dial: %d", code)
	}
	for _, n := range nodes {
		poll(t, 5*time.Second, n.name+" to apply the dial", func() bool { return n.dial(t, "us") == 0 })
	}

	// DNS load on every node for the whole outage.
	stop := make(chan struct{})
	type tally struct{ sent, lost, wrong int }
	results := make(chan tally, len(nodes))
	for _, n := range nodes {
		go func() {
			var tl tally
			c := &dns.Client{Timeout: 2 * time.Second}
			deadline := time.Now().Add(2 * time.Minute)
			for tl.sent < 200000 && time.Now().Before(deadline) {
				select {
				case <-stop:
					results <- tl
					return
				default:
				}
				m := new(dns.Msg)
				m.SetQuestion("api.fleet.test.", dns.TypeA)
				tl.sent++
				r, _, err := c.Exchange(m, n.dns)
				switch {
				case err != nil:
					tl.lost++
				case len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.20":
					tl.wrong++ // the dial sends everything to eu
				}
			}
			results <- tl
		}()
	}

	etcd.Stop()
	down := time.Now()
	for _, n := range nodes {
		poll(t, 15*time.Second, n.name+" to report etcd down", func() bool {
			var st node.StatusView
			return n.status(t, http.MethodGet, "/v1/status", "", &st) == http.StatusOK && !st.State.Connected && st.State.Since != nil
		})
	}
	var e map[string]string
	if code, _ := nodes[1].call(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("us", 50), nil, &e); code != http.StatusServiceUnavailable ||
		!strings.HasPrefix(e["error"], "state backend unavailable: ") {
		t.Fatalf("change while etcd is down: %d %v, want 503 state backend unavailable", code, e)
	}
	metrics := func(n *fleetNode) string {
		resp, err := http.Get("http://" + n.admin + "/metrics")
		if err != nil {
			return ""
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if m := metrics(nodes[2]); !strings.Contains(m, `meridian_state_backend_up{backend="etcd"} 0`) {
		t.Errorf("metrics while etcd is down lack meridian_state_backend_up 0")
	}
	time.Sleep(3 * time.Second) // past node_ttl: the leases expire too
	etcd.Restart()
	outage := time.Since(down)
	for _, n := range nodes {
		poll(t, 30*time.Second, n.name+" to reconnect", func() bool {
			var st node.StatusView
			return n.status(t, http.MethodGet, "/v1/status", "", &st) == http.StatusOK && st.State.Connected
		})
	}
	poll(t, 30*time.Second, "a change to be taken again", func() bool {
		return nodes[1].status(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("us", 0), nil) == http.StatusOK
	})
	poll(t, 15*time.Second, "every node to list all three again", func() bool {
		return slices.Equal(nodes[0].nodes(t), []string{"n1", "n2", "n3"})
	})
	close(stop)
	var total tally
	for range nodes {
		tl := <-results
		total.sent += tl.sent
		total.lost += tl.lost
		total.wrong += tl.wrong
	}
	t.Logf("etcd outage of %v under DNS load: %d queries, %d unanswered, %d with another answer",
		outage.Round(time.Millisecond), total.sent, total.lost, total.wrong)
	if total.lost != 0 || total.wrong != 0 || total.sent == 0 {
		t.Errorf("%d of %d queries unanswered and %d answered otherwise during the outage, want 0", total.lost, total.sent, total.wrong)
	}
}

// TestFleetColdStart: a node restarted while etcd is down serves the fleet
// state it saved on disk and says so; one with no saved state refuses.
func TestFleetColdStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and processes")
	}
	etcd := etcdtest.Start(t)
	nodes := startFleet(t, 1, etcd.Endpoint, nil)
	n := nodes[0]
	if code := n.status(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("us", 0), nil); code != http.StatusOK {
		t.Fatalf("dial: %d", code)
	}
	_ = n.child.cmd.Process.Kill()
	err := <-n.child.exited
	n.child.exited <- err
	etcd.Stop()

	n = n.moved(t)
	n.start(t)
	if d := n.dial(t, "us"); d != 0 {
		b, _ := os.ReadFile(strings.TrimSuffix(n.cfg, ".yaml") + "-state.json")
		t.Logf("saved state:\n%s", b)
		t.Fatalf("cold start: dial of us %d, want 0 from the saved state", d)
	}
	if a, err := n.answer(t); err != nil || !slices.Equal(a, []string{"192.0.2.20"}) {
		t.Fatalf("cold start: answer %v %v, want eu's 192.0.2.20", a, err)
	}
	if !strings.Contains(n.child.stderr.String(), "serving the fleet state saved on disk") {
		t.Errorf("cold start log does not say where the state came from:\n%s", n.child.stderr.String())
	}
	// Another node, never run: nothing saved, so it refuses.
	fresh := writeFleetConfig(t, t.TempDir(), "n9", etcd.Endpoint, "http://127.0.0.1:1", fleetOpts{})
	c := startChild(t, "run", "--config", fresh.cfg)
	select {
	case err := <-c.exited:
		c.exited <- err
		if err == nil || !strings.Contains(c.stderr.String(), "state backend unavailable") {
			t.Fatalf("start with etcd down and nothing saved: %v\n%s", err, c.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a node with etcd down and no saved state is running after 30s")
	}
	// etcd back: the node resynchronises and takes changes.
	etcd.Restart()
	poll(t, 30*time.Second, "a change after etcd is back", func() bool {
		return n.status(t, http.MethodPatch, "/v1/services/api/dials", setDialBody("us", 100), nil) == http.StatusOK
	})
}

// TestFleetQuorumHealth: n3 cannot reach region us (its checks fail). With
// fleet.health quorum its DNS answers follow the fleet (us is up for two of
// three) while with local they follow its own view.
func TestFleetQuorumHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and processes")
	}
	for _, mode := range []string{"quorum", "local"} {
		t.Run(mode, func(t *testing.T) {
			etcd := etcdtest.Start(t)
			nodes := startFleet(t, 3, etcd.Endpoint, func(i int) fleetOpts {
				o := fleetOpts{health: mode}
				if i == 2 {
					o.usPath = "/bad"
				}
				return o
			})
			n3 := nodes[2]
			want := "192.0.2.10" // us, first in failover order
			if mode == "local" {
				want = "192.0.2.20"
			}
			poll(t, 15*time.Second, "n3 to answer "+want, func() bool {
				a, err := n3.answer(t)
				return err == nil && slices.Equal(a, []string{want})
			})
			var st node.StatusView
			poll(t, 10*time.Second, "n3's status to show both views", func() bool {
				if n3.status(t, http.MethodGet, "/v1/status", "", &st) != http.StatusOK || len(st.Regions) == 0 {
					return false
				}
				us := st.Regions[0]
				return !us.Up && us.Fleet != nil && us.Fleet.Reporting == 3 && us.Fleet.Down == 1 && us.Fleet.Up
			})
			if st.Health != mode {
				t.Errorf("status fleet_health %q, want %q", st.Health, mode)
			}
			// The explanation of a DNS decision uses the same view.
			var ex struct {
				Outcome string `json:"outcome"`
			}
			wantRegion := map[string]string{"192.0.2.10": "us", "192.0.2.20": "eu"}[want]
			if n3.status(t, http.MethodGet, "/v1/explain?service=api&client=81.2.69.142", "", &ex) != http.StatusOK ||
				ex.Outcome != "answer "+wantRegion {
				t.Errorf("n3 explains %q, want %q", ex.Outcome, "answer "+wantRegion)
			}
			// The proxy keeps n3's own view in both modes.
			a, _ := nodes[0].answer(t)
			if !slices.Equal(a, []string{"192.0.2.10"}) {
				t.Errorf("n1 answers %v, want us", a)
			}
		})
	}
}

// TestFleetShiftTakeover: a shift runs on one node only; when that node is
// killed mid-way another takes it over at the step it reached and
// completes it.
func TestFleetShiftTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three processes")
	}
	etcd := etcdtest.Start(t)
	nodes := startFleet(t, 3, etcd.Endpoint, nil)
	poll(t, 10*time.Second, "all three listed", func() bool { return len(nodes[0].nodes(t)) == 3 })
	var sh state.Shift
	if code := nodes[0].status(t, http.MethodPost, "/v1/services/api/shifts",
		`{"region": "us", "steps": [75, 50, 25, 0], "hold": "1500ms", "reason": "fleet test"}`, &sh); code != http.StatusCreated {
		t.Fatalf("start shift: %d", code)
	}
	// Find the runner: the one node that took the shift's lock.
	var runner *fleetNode
	poll(t, 20*time.Second, "a node to run the shift", func() bool {
		for _, n := range nodes {
			if strings.Contains(n.child.stderr.String(), `"running shift"`) {
				if runner != nil && runner != n {
					t.Fatalf("both %s and %s run the shift", runner.name, n.name)
				}
				runner = n
			}
		}
		return runner != nil
	})
	audit := func(n *fleetNode) []state.AuditEntry {
		var body admin.AuditBody
		n.status(t, http.MethodGet, "/v1/audit?limit=50", "", &body)
		return body.Entries
	}
	// Runner-made steps: every shift change but the start (its first
	// step is set by the node that took the request).
	steps := func(n *fleetNode) map[string]int {
		by := map[string]int{}
		for _, e := range audit(n) {
			if strings.HasPrefix(e.Action, "shift.") && e.Action != "shift.start" && !strings.HasSuffix(e.Reason, ": started") {
				by[e.Node]++
			}
		}
		return by
	}
	poll(t, 20*time.Second, "the runner to take a step", func() bool { return steps(nodes[0])[runner.name] > 0 })
	if by := steps(nodes[0]); len(by) != 1 {
		t.Fatalf("shift steps taken by %v, want the runner alone", by)
	}
	var others []*fleetNode
	for _, n := range nodes {
		if n != runner {
			others = append(others, n)
		}
	}
	if err := runner.child.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var took time.Duration
	poll(t, 30*time.Second, "another node to take the shift over", func() bool {
		for _, n := range others {
			if strings.Contains(n.child.stderr.String(), `"running shift"`) {
				took = time.Since(killed)
				return true
			}
		}
		return false
	})
	var list struct {
		Shifts []state.Shift `json:"shifts"`
	}
	poll(t, 30*time.Second, "the shift to complete", func() bool {
		if others[0].status(t, http.MethodGet, "/v1/services/api/shifts", "", &list) != http.StatusOK {
			return false
		}
		for _, s := range list.Shifts {
			if s.ID == sh.ID {
				return s.State == state.ShiftDone
			}
		}
		return false
	})
	done := time.Since(killed)
	t.Logf("shift runner killed: another node took the shift over after %v (node_ttl 2s), completed it %v after the kill",
		took.Round(time.Millisecond), done.Round(time.Millisecond))
	for _, n := range others {
		poll(t, 5*time.Second, n.name+" to serve dial 0", func() bool { return n.dial(t, "us") == 0 })
	}
	by := steps(others[0])
	if by[runner.name] == 0 || len(by) != 2 {
		t.Errorf("shift steps taken by %v, want the killed runner and one other", by)
	}
}

func TestDemoFleetConfigLoads(t *testing.T) {
	t.Setenv("MERIDIAN_DEMO_TOKEN", "demo-secret")
	dir := t.TempDir()
	addrs := demoAddrs{dns: "127.0.0.1:15353", http: "127.0.0.1:18080", admin: "127.0.0.1:19053", regionPort: "19100"}
	var hashes []string
	for i := range demoFleetSize {
		path := filepath.Join(dir, fmt.Sprintf("demo-%d.yaml", i+1))
		if err := os.WriteFile(path, []byte(demoFleetYAML(dir, addrs, i)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("demo-edge-%d", i+1); cfg.Node.Name != want || cfg.State.Backend != "etcd" || cfg.Fleet.Health != "quorum" {
			t.Fatalf("node %d: name %q, backend %q, health %q", i+1, cfg.Node.Name, cfg.State.Backend, cfg.Fleet.Health)
		}
		if want := fmt.Sprintf("127.0.0.1:%d", 15353+i); cfg.Listen.DNS[0] != want {
			t.Fatalf("node %d: dns %v, want %s", i+1, cfg.Listen.DNS, want)
		}
		hashes = append(hashes, cfg.State.Path)
	}
	if hashes[0] == hashes[1] {
		t.Fatal("two demo nodes share a state path")
	}
}
