package dnsserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/policy"
)

func TestUpdateSwapsAnswers(t *testing.T) {
	f := newFixture(t, setup{})
	f.listen(t)
	q := question{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"}.msg()
	if got := rrStrings(f.exchange(t, q, "udp").Answer); len(got) != 1 || !strings.HasSuffix(got[0], "198.51.100.10") {
		t.Fatalf("before: %q", got)
	}
	if err := f.s.Update(f.input(t, setup{down: []string{"eu-west"}, degraded: []string{"api"}})); err != nil {
		t.Fatal(err)
	}
	want := []string{"api.example.test. 5 IN A 192.0.2.10", "api.example.test. 5 IN A 192.0.2.11"}
	if got := rrStrings(f.exchange(t, q, "udp").Answer); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("after: %q, want %q", got, want)
	}
}

func TestUpdateErrorsKeepServing(t *testing.T) {
	f := newFixture(t, setup{})
	good := f.s.table.Load()
	base := f.input(t, setup{})
	cases := []struct {
		name string
		edit func(in *Input)
		want string
	}{
		{"no config", func(in *Input) { in.Config = nil }, "updating dns tables: no config"},
		{"hostname outside the zones", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			in.Config.Services[0].Hostnames = []string{"api.example.org"}
		}, `updating dns tables: service "api": hostname "api.example.org" is in no configured zone`},
		{"hostname of two services", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			in.Config.Services[1].Hostnames = []string{"api.example.test"}
		}, `updating dns tables: service "v6": hostname "api.example.test" is also a hostname of service "api"`},
		{"static A at a service hostname", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			z := &in.Config.Zones[0]
			z.RRs = append(z.RRs[:len(z.RRs):len(z.RRs)], mustRR(t, "api.example.test. 60 IN A 192.0.2.1"))
		}, `updating dns tables: zone "example.test": api.example.test has static A records but is the hostname of service "api"`},
		{"CNAME and other data", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			z := &in.Config.Zones[0]
			z.RRs = append(z.RRs[:len(z.RRs):len(z.RRs)], mustRR(t, "alias.example.test. 60 IN TXT x"))
		}, `updating dns tables: zone "example.test": alias.example.test has a CNAME and other records`},
		{"record outside its zone", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			z := &in.Config.Zones[0]
			z.RRs = append(z.RRs[:len(z.RRs):len(z.RRs)], mustRR(t, "www.example.org. 60 IN A 192.0.2.1"))
		}, `updating dns tables: zone "example.test": record "www.example.org.\t60\tIN\tA\t192.0.2.1": www.example.org. is outside the zone`},
		{"zone twice", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			in.Config.Zones = append(in.Config.Zones, in.Config.Zones[1])
		}, `updating dns tables: zone "sub.example.test": configured twice`},
		{"no nameservers", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			in.Config.Zones[1].Nameservers = nil
		}, `updating dns tables: zone "sub.example.test": no nameservers`},
		{"bad soa email", func(in *Input) {
			in.Config = cloneConfig(in.Config)
			in.Config.Zones[1].SOA.Email = "nobody"
		}, `updating dns tables: zone "sub.example.test": soa email "nobody" is not an email address`},
		{"no policy snapshot", func(in *Input) { in.Policy = nil },
			"updating dns tables: no policy snapshot for 7 services"},
		{"policy of another config", func(in *Input) {
			in.Policy = &policy.Snapshot{Regions: in.Policy.Regions, Services: in.Policy.Services[:2]}
		}, "updating dns tables: policy snapshot has 2 services and 4 regions, config 7 and 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.edit(&in)
			err := f.s.Update(in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Update: %v\nwant %s", err, tc.want)
			}
			if f.s.table.Load() != good {
				t.Errorf("tables replaced after a failed update")
			}
		})
	}
}

func cloneConfig(c *config.Config) *config.Config {
	cp := *c
	cp.Zones = append([]config.Zone(nil), c.Zones...)
	cp.Services = append([]config.Service(nil), c.Services...)
	return &cp
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestNextSerial(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name   string
		prev   serialState
		seen   bool
		hash   uint64
		newest time.Time
		want   uint32
	}{
		{"first: newest mtime", serialState{}, false, 1, t0, 1_800_000_000},
		{"first without files: now", serialState{}, false, 1, time.Time{}, 1_900_000_000},
		{"unchanged keeps the serial", serialState{serial: 1_700_000_000, hash: 1}, true, 1, t0, 1_700_000_000},
		{"changed with a newer file", serialState{serial: 1_700_000_000, hash: 1}, true, 2, t0, 1_800_000_000},
		{"changed, time did not rise", serialState{serial: 1_800_000_000, hash: 1}, true, 2, t0, 1_800_000_001},
		{"changed, serial ahead of the clock", serialState{serial: 1_800_000_500, hash: 1}, true, 2, t0, 1_800_000_501},
	}
	for _, c := range cases {
		if got := nextSerial(c.prev, c.seen, c.hash, c.newest, time.Unix(1_900_000_000, 0)); got != c.want {
			t.Errorf("%s: serial %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSerialFollowsFiles writes a config and a zone file, loads them, and
// checks the serial against the files' times and content changes.
func TestSerialFollowsFiles(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "meridian.yaml")
	zonePath := filepath.Join(dir, "z.zone")
	write := func(path, data string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	const cfgText = "node: {name: n}\nlisten: {dns: [\"127.0.0.1:0\"]}\nzones:\n  - {name: example.test, nameservers: [ns1.example.test], file: z.zone}\n"
	t1, t2 := time.Unix(1_700_000_000, 0), time.Unix(1_700_000_100, 0)
	write(cfgPath, cfgText, t1)
	write(zonePath, "www 60 IN A 192.0.2.1\n", t2)
	s := New(Options{})
	load := func() uint32 {
		t.Helper()
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Update(Input{Config: cfg, Policy: &policy.Snapshot{}}); err != nil {
			t.Fatal(err)
		}
		return s.table.Load().st.zones[0].soa.Serial
	}
	if got := load(); got != uint32(t2.Unix()) {
		t.Fatalf("serial %d, want the zone file's mtime %d", got, t2.Unix())
	}
	if got := load(); got != uint32(t2.Unix()) {
		t.Errorf("reloaded unchanged: serial %d, want %d", got, t2.Unix())
	}
	write(zonePath, "www 60 IN A 192.0.2.2\n", t2) // changed, same time
	if got := load(); got != uint32(t2.Unix())+1 {
		t.Errorf("changed in place: serial %d, want %d", got, t2.Unix()+1)
	}
	t3 := time.Unix(1_700_001_000, 0)
	write(cfgPath, cfgText+"# touched\n", t3)
	write(zonePath, "www 60 IN A 192.0.2.3\n", t2)
	if got := load(); got != uint32(t3.Unix()) {
		t.Errorf("changed with a newer config: serial %d, want %d", got, t3.Unix())
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, setup{down: []string{"us-east", "eu-west", "ap-south"}})
	ask := func(name string, qtype uint16, ecs string, n int) {
		for range n {
			f.answerBytes(packMsg(t, question{name: name, qtype: qtype, ecs: ecs}.msg()), "192.0.2.1")
		}
	}
	ask("www.example.test.", dns.TypeA, "", 3)
	ask("nope.example.test.", dns.TypeAAAA, "", 2)
	ask("www.example.org.", dns.TypeA, "", 1)
	ask("foo.wild.example.test.", 65280, "", 1) // general path, qtype "other"
	ask("api.example.test.", dns.TypeA, "81.2.69.0/24", 4)
	ask("big.example.test.", dns.TypeTXT, "", 1)
	f.answerBytes(withECS(t, []byte{0, 9, 0, 0}), "192.0.2.1")
	cases := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"meridian_dns_queries_total", map[string]string{"zone": "example.test", "qtype": "A", "rcode": "NOERROR"}, 7},
		{"meridian_dns_queries_total", map[string]string{"zone": "example.test", "qtype": "AAAA", "rcode": "NXDOMAIN"}, 2},
		{"meridian_dns_queries_total", map[string]string{"zone": "none", "qtype": "A", "rcode": "REFUSED"}, 1},
		{"meridian_dns_queries_total", map[string]string{"zone": "example.test", "qtype": "other", "rcode": "NOERROR"}, 1},
		{"meridian_dns_queries_total", map[string]string{"zone": "example.test", "qtype": "TXT", "rcode": "NOERROR"}, 1},
		{"meridian_dns_queries_total", map[string]string{"zone": "none", "qtype": "A", "rcode": "FORMERR"}, 1},
		// All regions down: the decision fails open to the first region of
		// the EU rule, eu-west.
		{"meridian_dns_answers_total", map[string]string{"service": "api", "region": "eu-west"}, 4},
		{"meridian_decisions_fail_open_total", map[string]string{"service": "api"}, 4},
	}
	for _, c := range cases {
		if got := counterValue(t, f.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

func TestTwoServersShareRegistry(t *testing.T) {
	f := newFixture(t, setup{})
	s2 := New(Options{Registerer: f.reg})
	if s2.m.queries != f.s.m.queries {
		t.Errorf("second server on one registry got its own query counter")
	}
}
