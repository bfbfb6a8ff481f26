package proxy

import (
	"net/http"
	"testing"

	"github.com/meridian-edge/meridian/config"
)

// TestBenchConfig checks that configs/bench-proxy.yaml loads and that the
// Host the benchmark harness sends reaches its service.
func TestBenchConfig(t *testing.T) {
	cfg, err := config.Load("../configs/bench-proxy.yaml")
	if err != nil {
		t.Fatalf("loading the bench config: %v", err)
	}
	p := New(Options{Logger: quietLogger()})
	if err := p.Update(Input{Config: cfg, Policy: policyFor(t, cfg, nil)}); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1:8080", "localhost:8080", "bench.example.test"} {
		svc := p.tab.Load().route(&http.Request{Host: host})
		if svc == nil || svc.name != "bench" {
			t.Errorf("host %s: got service %v, want bench", host, svc)
		}
	}
	if got := cfg.Listen.HTTP; len(got) != 1 || got[0] != "127.0.0.1:8080" {
		t.Errorf("got listen.http %v, want [127.0.0.1:8080]", got)
	}
	if got := cfg.Regions[0].Endpoints[0].URL; got != "http://127.0.0.1:8180" {
		t.Errorf("got upstream %s, want http://127.0.0.1:8180", got)
	}
}
