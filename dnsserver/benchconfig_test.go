package dnsserver

import (
	"os"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
)

// TestBenchConfig checks configs/bench.yaml against the answers the peer
// benchmark verifies before it measures a candidate.
func TestBenchConfig(t *testing.T) {
	const file = "../configs/bench.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(file, b)
	if err != nil {
		t.Fatalf("parsing %s: %v", file, err)
	}
	db, err := geo.Open(cfg.GeoIP.Database)
	if err != nil {
		t.Fatal(err)
	}
	hs := healthFor(cfg)
	f := &fixture{cfg: cfg, geo: db, reg: prometheus.NewRegistry()}
	f.s = New(Options{Registerer: f.reg})
	if err := f.s.Update(Input{Config: cfg, Geo: db, Policy: snapshotFor(t, cfg, hs), Health: hs}); err != nil {
		t.Fatal(err)
	}
	f.listen(t)
	if got := cfg.Listen.DNS; len(got) != 1 || got[0] != "127.0.0.1:5300" {
		t.Errorf("listen.dns = %v, want [127.0.0.1:5300]", got)
	}
	cases := []struct {
		name, ecs, want string
	}{
		{"www.example.test.", "", "192.0.2.80"},
		{"api.example.test.", "", "192.0.2.10"},
		{"api.example.test.", "81.2.69.0/24", "198.51.100.10"},
		{"api.example.test.", "175.16.199.0/24", "203.0.113.10"},
		{"api.example.test.", "216.160.83.0/24", "192.0.2.10"},
	}
	for _, tc := range cases {
		r := f.exchange(t, question{name: tc.name, qtype: dns.TypeA, ecs: tc.ecs}.msg(), "udp")
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tc.want {
			t.Errorf("%s (ECS %q): %v, want %s", tc.name, tc.ecs, r.Answer, tc.want)
		}
	}
}
