package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestDNSFollowsHealth(t *testing.T) {
	tn := startNode(t, "")
	if got := answerA(tn.query(t, "api.example.test", dns.TypeA)); got != "192.0.2.1" {
		t.Fatalf("healthy: got %s, want 192.0.2.1", got)
	}
	// us-east's upstream fails: within interval×fall + interval the answer
	// moves to eu-west, with the degraded TTL. The delay is counted in
	// probes, not wall time, which a loaded machine stretches: once
	// fall+3 failing probes were answered (fall judged, the interval it
	// may take, and two of slack for the rebuild, as the 250ms the wall
	// clock bound allowed), the answer must have moved.
	const fall = 2
	us := tn.ups["us-east"]
	us.down.Store(true)
	var stale int64 // failing probes answered before a query that still got us-east
	waitFor(t, 10*time.Second, "answer to move to eu-west", func() bool {
		failed := us.failed.Load()
		if answerA(tn.query(t, "api.example.test", dns.TypeA)) == "192.0.2.2" {
			return true
		}
		stale = max(stale, failed)
		return false
	})
	if stale >= fall+3 {
		t.Errorf("the answer still pointed at us-east after %d failing probes, want it moved within fall (%d) probes and an interval", stale, fall)
	}
	if r := tn.query(t, "api.example.test", dns.TypeA); r.Answer[0].Header().Ttl != 5 {
		t.Errorf("degraded ttl: got %d, want 5", r.Answer[0].Header().Ttl)
	}
	// Everything down: fail open, in policy order, counted.
	tn.ups["eu-west"].down.Store(true)
	tn.ups["ap-south"].down.Store(true)
	waitFor(t, 10*time.Second, "fail open to us-east", func() bool {
		return answerA(tn.query(t, "api.example.test", dns.TypeA)) == "192.0.2.1" && !tn.View().Policy.Regions[2].Up
	})
	if v := testutil.ToFloat64(tn.m.failOpen.WithLabelValues("api")); v < 1 {
		t.Errorf("fail-open counter: got %v, want ≥ 1", v)
	}
	// Recovery after rise passes.
	tn.ups["eu-west"].down.Store(false)
	waitFor(t, 10*time.Second, "eu-west back", func() bool {
		return answerA(tn.query(t, "api.example.test", dns.TypeA)) == "192.0.2.2"
	})
}

func TestOverrides(t *testing.T) {
	tn := startNode(t, "")
	who := Actor{Token: "test", Reason: "maintenance"}
	if _, err := tn.SetOverride("us-east", "down", who); err != nil {
		t.Fatal(err)
	}
	if got := answerA(tn.query(t, "api.example.test", dns.TypeA)); got != "192.0.2.2" {
		t.Fatalf("us-east forced down: got %s, want 192.0.2.2", got)
	}
	// Forced up beats failing checks.
	tn.ups["us-east"].down.Store(true)
	if _, err := tn.SetOverride("us-east", "up", who); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "us-east checks failing", func() bool { return !tn.View().Policy.Regions[0].Up })
	if got := answerA(tn.query(t, "api.example.test", dns.TypeA)); got != "192.0.2.1" {
		t.Fatalf("us-east forced up: got %s, want 192.0.2.1", got)
	}
	if _, err := tn.SetOverride("us-east", "auto", who); err != nil {
		t.Fatal(err)
	}
	if got := answerA(tn.query(t, "api.example.test", dns.TypeA)); got != "192.0.2.2" {
		t.Fatalf("us-east auto while failing: got %s, want 192.0.2.2", got)
	}
	for _, tt := range []struct {
		region, health string
		kind           error
	}{
		{"nowhere", "down", ErrNotFound},
		{"us-east", "sideways", ErrInvalid},
	} {
		if _, err := tn.SetOverride(tt.region, tt.health, who); !errors.Is(err, tt.kind) {
			t.Errorf("override %s %s: got %v, want %v", tt.region, tt.health, err, tt.kind)
		}
	}
	a := tn.Audit(10)
	if len(a) != 3 || a[0].Action != "override" || a[0].New != "auto" || a[2].Old != "auto" || a[2].New != "down" || a[2].Reason != "maintenance" {
		t.Fatalf("audit: %+v", a)
	}
}

func TestDialsPersistAcrossRestart(t *testing.T) {
	tn := startNode(t, "")
	sv, err := tn.SetDials("api", map[string]int{"us-east": 0}, "", Actor{Token: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := answerA(tn.query(t, "api.example.test", dns.TypeA)); got != "192.0.2.2" {
		t.Fatalf("us-east drained: got %s, want 192.0.2.2", got)
	}
	// A stale ETag is refused and changes nothing.
	if _, err := tn.SetDials("api", map[string]int{"us-east": 50}, `"stale"`, Actor{}); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("stale etag: got %v", err)
	}
	if _, err := tn.SetDials("api", map[string]int{"us-east": 50}, sv.ETag, Actor{}); err != nil {
		t.Fatalf("current etag: %v", err)
	}
	for _, tt := range []struct {
		svc   string
		dials map[string]int
		kind  error
	}{
		{"nope", map[string]int{"us-east": 1}, ErrNotFound},
		{"api", map[string]int{"mars": 1}, ErrInvalid},
		{"api", map[string]int{"us-east": 101}, ErrInvalid},
		{"api", map[string]int{"us-east": 10, "eu-west": -1}, ErrInvalid},
		{"api", nil, ErrInvalid},
	} {
		if _, err := tn.SetDials(tt.svc, tt.dials, "", Actor{}); !errors.Is(err, tt.kind) {
			t.Errorf("dials %s %v: got %v, want %v", tt.svc, tt.dials, err, tt.kind)
		}
	}
	if d := tn.View().Policy.Services[0].Dials[0]; d != 50 {
		t.Fatalf("dial after refused changes: got %d, want 50", d)
	}
	_ = tn.Close()

	// A new node from the same config and state file keeps the dial.
	tn2 := startNode2(t, tn)
	if d := tn2.View().Policy.Services[0].Dials[0]; d != 50 {
		t.Fatalf("after restart: got dial %d, want 50", d)
	}
}

// startNode2 starts a second node from tn's config file.
func startNode2(t *testing.T, tn *testNode) *Node {
	t.Helper()
	n := startFromFile(t, tn.path)
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func TestExplainAndStatus(t *testing.T) {
	tn := startNode(t, "")
	ex, err := tn.Explain("api", netip.MustParseAddr("81.2.69.142"))
	if err != nil {
		t.Fatal(err)
	}
	if ex.Client.Country != "GB" || ex.Order[0] != "us-east" || ex.Outcome != "answer us-east" {
		t.Fatalf("explain: %+v", ex)
	}
	if _, err := tn.Explain("nope", netip.MustParseAddr("1.1.1.1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	st := tn.Status()
	if st.Node != "test-node" || len(st.Regions) != 3 || !st.Ready || st.Regions[0].Endpoints[0].LastResult == "" {
		t.Fatalf("status: %+v", st)
	}
}

func TestReload(t *testing.T) {
	tn := startNode(t, "")
	text := strings.Replace(mustRead(t, tn.path), "ttl: 30s", "ttl: 20s", 1)
	tn.write(t, text)
	if err := tn.Reload(Actor{Token: "ops"}); err != nil {
		t.Fatal(err)
	}
	if g := tn.View().Generation; g != 2 {
		t.Fatalf("generation: got %d, want 2", g)
	}
	if r := tn.query(t, "api.example.test", dns.TypeA); r.Answer[0].Header().Ttl != 20 {
		t.Fatalf("ttl after reload: got %d, want 20", r.Answer[0].Header().Ttl)
	}
	// Endpoints that did not change keep their health.
	if !tn.View().Policy.Regions[0].Up {
		t.Fatal("us-east lost its health over a reload")
	}
	// A broken config is refused and the old one keeps serving.
	tn.write(t, text+"\nbogus: 1\n")
	err := tn.Reload(Actor{Token: "ops"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "meridian.yaml:") {
		t.Fatalf("broken reload: got %v", err)
	}
	if g := tn.View().Generation; g != 2 {
		t.Fatalf("generation after a refused reload: got %d, want 2", g)
	}
	if got := answerA(tn.query(t, "api.example.test", dns.TypeA)); got != "192.0.2.1" {
		t.Fatalf("after refused reload: got %s", got)
	}
	if v := testutil.ToFloat64(tn.m.reloads.WithLabelValues("error")); v != 1 {
		t.Fatalf("reload errors: got %v, want 1", v)
	}
}

func TestReadyAndDrain(t *testing.T) {
	tn := startNode(t, "")
	url := "http://" + tn.Addr("admin").String()
	get := func(path string) (int, string) {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/health/ready"); code != 200 {
		t.Fatalf("ready: got %d", code)
	}
	done := make(chan error, 1)
	go func() { done <- tn.Shutdown(context.Background()) }()
	waitFor(t, time.Second, "draining", tn.Draining)
	// During the drain the node still serves but is not ready.
	if code, body := get("/health/ready"); code != 503 || body != "draining\n" {
		t.Fatalf("ready while draining: got %d %q", code, body)
	}
	if got := answerA(tn.query(t, "api.example.test", dns.TypeA)); got != "192.0.2.1" {
		t.Fatalf("dns while draining: got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestMetricsLint(t *testing.T) {
	tn := startNode(t, "")
	tn.query(t, "api.example.test", dns.TypeA)
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, tn)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	want := []string{"meridian_build_info", "meridian_service_dial", "meridian_config_reloads_total",
		"meridian_region_up", "meridian_endpoint_up", "meridian_health_checks_total", "meridian_dns_queries_total",
		"meridian_dns_answers_total", "meridian_region_override", "meridian_dns_request_duration_seconds"}
	have := map[string]bool{}
	for _, mf := range mustGather(t, tn) {
		have[mf.GetName()] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("metric %s missing", w)
		}
	}
}

// TestDefaultPortsRefusedInTests: a test config that leaves listen.admin
// unset would bind the product's default 127.0.0.1:9053 and collide with a
// node running on the machine; in a test binary the node refuses it.
func TestDefaultPortsRefusedInTests(t *testing.T) {
	for _, tt := range []struct{ kind, addr string }{
		{"admin", "127.0.0.1:9053"},
		{"dns", "127.0.0.1:5353"},
		{"http", "[::1]:8080"},
	} {
		if err := refuseDefaultPort(tt.kind, tt.addr); err == nil || !strings.Contains(err.Error(), "tests must not bind a default port") {
			t.Errorf("%s %s: got %v, want a refusal", tt.kind, tt.addr, err)
		}
	}
	if err := refuseDefaultPort("admin", "127.0.0.1:0"); err != nil {
		t.Errorf("127.0.0.1:0: %v", err)
	}
	// A config without listen.admin gets the default, and Start refuses it.
	dir := t.TempDir()
	path := dir + "/meridian.yaml"
	text := strings.Replace(baseConfig, "  admin: \"127.0.0.1:0\"\n", "", 1)
	text = strings.ReplaceAll(text, "{{STATE}}", dir+"/state.json")
	for _, r := range []string{"us-east", "eu-west", "ap-south"} {
		text = strings.ReplaceAll(text, "{{"+r+"}}", "http://127.0.0.1:1")
	}
	tn := &testNode{path: path}
	tn.write(t, text)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(context.Background())
	if err == nil {
		_ = n.Close()
		t.Fatal("a node on the default admin address started in a test")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:9053") {
		t.Fatalf("error %q does not name the address", err)
	}
}

func TestPrivilegeHint(t *testing.T) {
	denied := &net.OpError{Op: "listen", Net: "udp", Err: os.NewSyscallError("bind", syscall.EACCES)}
	got := privilegeHint(denied).Error()
	for _, want := range []string{"permission denied", "CAP_NET_BIND_SERVICE", "setcap cap_net_bind_service=+ep", "deploy/systemd/meridian.service"} {
		if !strings.Contains(got, want) {
			t.Errorf("hint %q lacks %q", got, want)
		}
	}
	if !errors.Is(privilegeHint(denied), syscall.EACCES) {
		t.Error("the hint hides the cause")
	}
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	if got := privilegeHint(inUse); got != error(inUse) {
		t.Errorf("another error changed: %v", got)
	}
}
