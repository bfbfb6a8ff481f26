package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const failoverBase = `node: {addresses: [192.0.2.53]}
listen: {http: ["127.0.0.1:8080"]}
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    replication: {lag_url: "http://192.0.2.1:9000/lag"}
    promote: {url: "https://ops.example.net/promote?r=r1"}
  - name: r2
    endpoints: [{address: 192.0.2.2}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    mode: proxy
    regions: [r1, r2]
    writes: {primary: r1}
    failover: {}
`

func TestFailoverDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.yaml")
	if err := os.WriteFile(path, []byte(failoverBase), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Regions[0]
	if r.Replication.Interval.D() != DefaultReplicationInterval || r.Promote.Timeout.D() != DefaultPromoteTimeout {
		t.Errorf("region defaults: interval %s, promote timeout %s", r.Replication.Interval, r.Promote.Timeout)
	}
	s := c.Services[0]
	if !slices.Equal(s.Writes.Methods, DefaultWriteMethods()) {
		t.Errorf("writes.methods: got %v", s.Writes.Methods)
	}
	f := s.Failover
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"rpo", f.RPO.D(), 5 * time.Second},
		{"max_wait", f.MaxWait.D(), 2 * time.Minute},
		{"hold", f.Hold.D(), time.Minute},
		{"after", f.After.D(), 30 * time.Second},
		{"hold_down", f.HoldDown.D(), 10 * time.Minute},
	} {
		if tc.got != tc.want {
			t.Errorf("failover.%s: got %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	if f.Failback != "manual" || f.Auto || f.Guard.MaxErrorRatio != DefaultFailoverMaxErrorRatio {
		t.Errorf("failover: got %+v", *f)
	}
	if !s.IsWrite("POST") || s.IsWrite("GET") || s.Primary() != "r1" {
		t.Errorf("IsWrite/Primary: %v %v %q", s.IsWrite("POST"), s.IsWrite("GET"), s.Primary())
	}
}

func TestFailoverErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{
			name: "replication, promote, writes and failover",
			yaml: `node: {addresses: [192.0.2.53]}
listen: {http: ["127.0.0.1:8080"]}
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    replication: {lag_url: "ftp://x/lag", interval: 0s}
    promote: {url: "", timeout: -1s}
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    mode: dns
    regions: [r1]
    writes: {primary: r9, methods: ["PO ST"]}
    failover: {rpo: -1s, hold: 0s, failback: sometimes, guard: {max_error_ratio: 2}}
`,
			want: []string{
				`6: region "r1": replication.lag_url "ftp://x/lag": the scheme must be http or https`,
				`6: region "r1": replication.interval must be positive, got 0s`,
				`7: region "r1": promote.url "": the scheme must be http or https`,
				`7: region "r1": promote.timeout must be positive, got -1s`,
				`16: service "api": writes needs mode proxy (for a dns service, give the writes a hostname of their own served by a failover service)`,
				`16: service "api": writes.primary "r9" is not in the service's regions`,
				`16: service "api": writes.methods "PO ST" is not an HTTP method`,
				`17: service "api": failover.rpo must not be negative, got -1s`,
				`17: service "api": failover.hold must be positive, got 0s`,
				`17: service "api": failover.failback "sometimes" is not one of manual, auto`,
				`17: service "api": failover.guard.max_error_ratio 2 is outside 0..1`,
				`17: service "api": failover needs at least two regions`,
			},
		},
	})
}
