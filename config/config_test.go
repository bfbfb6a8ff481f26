package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLoadFull(t *testing.T) {
	t.Setenv("MERIDIAN_TEST_OPS_TOKEN", "ops-secret")
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", name, got, want)
		}
	}
	check("File", c.File, "testdata/full.yaml")

	check("node.name", c.Node.Name, "edge-fra-1")
	check("node.location", c.Node.Location, &Location{Lat: 50.11, Lon: 8.68})
	check("node.addresses", c.Node.Addresses, []netip.Addr{netip.MustParseAddr("203.0.113.53"), netip.MustParseAddr("2001:db8::53")})
	check("node.drain", c.Node.Drain.D(), 3*time.Second)
	check("node.shutdown_timeout", c.Node.ShutdownTimeout.D(), 20*time.Second)

	check("listen", c.Listen, Listen{
		DNS:   []string{"127.0.0.1:5353", "[::1]:5353"},
		HTTP:  []string{"127.0.0.1:8080"},
		HTTPS: []string{"127.0.0.1:8443"},
		Admin: "127.0.0.1:9054",
		Connections: Connections{Max: 5000, MaxPerSource: 0, IdleTimeout: Duration(time.Minute),
			BusyIdleTimeout: Duration(2 * time.Second), BusyAt: 90},
	})
	check("geoip", c.GeoIP.Database, "/var/lib/meridian/GeoLite2-City.mmdb")
	// relative to the config's folder, like every path the config names
	check("tls.certificates", c.TLS.Certificates, []Certificate{{CertFile: filepath.Join("testdata", "a.pem"), KeyFile: filepath.Join("testdata", "a.key")}})
	check("tls.acme", c.TLS.ACME, &ACME{
		Email:     "ops@example.com",
		CA:        "https://acme-staging-v02.api.letsencrypt.org/directory",
		Challenge: "http-01",
		CARoot:    "/etc/meridian/ca.pem",
		Storage:   "/var/lib/meridian/certs",
	})
	check("admin.tokens", c.Admin.Tokens, []Token{
		{Name: "ops", Role: "write", SecretEnv: "MERIDIAN_TEST_OPS_TOKEN", Secret: "ops-secret"},
		// relative to the config's folder, trailing white space trimmed
		{Name: "grafana", Role: "read", SecretFile: filepath.Join("testdata", "read.token"), Secret: "s3cret-read-token"},
	})
	check("state", c.State, State{
		Backend: "etcd",
		Path:    "/var/lib/meridian/state.json",
		Etcd: &Etcd{
			Endpoints: []string{"https://127.0.0.1:2379", "https://etcd.example.net:2379"}, Prefix: "/edge/",
			Username: "meridian", PasswordFile: filepath.Join("testdata", "read.token"), Password: "s3cret-read-token",
			TLS: &EtcdTLS{
				CAFile: filepath.Join("testdata", "ca.pem"), CertFile: filepath.Join("testdata", "node.pem"), KeyFile: filepath.Join("testdata", "node.key"),
			},
			DialTimeout: Duration(3 * time.Second),
		},
	})
	check("fleet", c.Fleet, Fleet{NodeTTL: Duration(5 * time.Second), Health: "quorum", Quorum: 0.34})

	if len(c.Regions) != 4 {
		t.Fatalf("got %d regions, want 4", len(c.Regions))
	}
	check("regions[0]", c.Regions[0], Region{
		Name:     "us-east",
		Location: &Location{Lat: 38.9, Lon: -77.4},
		Endpoints: []Endpoint{
			{Address: netip.MustParseAddr("192.0.2.10"), URL: "http://192.0.2.10:8080", Weight: 3, Line: 43},
			{Hostname: "us-east.lb.example.net", URL: "https://us-east.lb.example.net", Weight: 1, Line: 44},
		},
		Health: Health{
			Type:     "https",
			Path:     "/healthz",
			Host:     "api.example.com",
			Expect:   []int{200, 204},
			Headers:  map[string]string{"User-Agent": "meridian-health", "X-Probe": "1"},
			Interval: Duration(5 * time.Second),
			Timeout:  Duration(1500 * time.Millisecond),
			Rise:     3,
			Fall:     4,
		},
		MinHealthy: 2,
		Line:       40,
	})
	check("regions[1].endpoints", c.Regions[1].Endpoints, []Endpoint{
		{Address: netip.MustParseAddr("2001:db8::10"), URL: "http://[2001:db8::10]", Weight: 1, Line: 59},
	})
	check("regions[2].health.type", c.Regions[2].Health.Type, "tcp")
	check("regions[2].endpoints[1].url", c.Regions[2].Endpoints[1].URL, "http://198.51.100.11")
	check("regions[3].health.type", c.Regions[3].Health.Type, "none")

	if len(c.Zones) != 2 {
		t.Fatalf("got %d zones, want 2", len(c.Zones))
	}
	z := c.Zones[0]
	check("zones[0].name", z.Name, "example.com")
	check("zones[0].nameservers", z.Nameservers, []string{"ns1.example.com", "ns2.example.com"})
	check("zones[0].soa", z.SOA, SOA{Email: "dns-admin@example.com", TTL: 1800, NegativeTTL: 30, Refresh: 3600, Retry: 600, Expire: 604800})
	check("zones[0].file", z.File, filepath.Join("testdata", "zones", "example.com.zone"))
	check("zones[0].line", z.Line, 73)
	var rrs []string
	for _, rr := range z.RRs {
		rrs = append(rrs, strings.Join(strings.Fields(rr.String()), " "))
	}
	check("zones[0].RRs", rrs, []string{
		// the zone file first ($TTL 600 there), then the inline records (default TTL = soa.ttl)
		"example.com. 600 IN MX 10 mail.example.com.",
		"mail.example.com. 600 IN A 192.0.2.25",
		`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=reject"`,
		"ns1.example.com. 3600 IN A 203.0.113.53",
		"ns2.example.com. 1800 IN AAAA 2001:db8::53",
		"www.example.com. 300 IN CNAME api.example.com.",
	})
	check("zones[1]", c.Zones[1], Zone{
		Name:        "example.org",
		Nameservers: []string{"ns1.example.com"},
		SOA:         SOA{Email: "hostmaster@example.org", TTL: 3600, NegativeTTL: 60, Refresh: 7200, Retry: 3600, Expire: 1209600},
		Line:        81,
	})

	if len(c.Services) != 2 {
		t.Fatalf("got %d services, want 2", len(c.Services))
	}
	api := c.Services[0]
	check("services[0]", api, Service{
		Name:      "api",
		Hostnames: []string{"api.example.com", "api.example.org"},
		Mode:      "dns",
		Policy:    "geo",
		Regions:   []string{"us-east", "eu-west", "ap-south", "us-west"},
		Geo: []GeoRule{
			{Match: []string{"DE", "FR"}, Regions: []string{"eu-west"}, Line: 91},
			{Match: []string{"EU"}, Regions: []string{"eu-west", "us-east"}, Line: 92},
			{Match: []string{"US-CA"}, Regions: []string{"us-west"}, Fence: true, Line: 93},
			{Match: []string{"default"}, Regions: []string{"us-east"}, Line: 94},
		},
		Dials:       map[string]int{"us-east": 100, "eu-west": 50, "ap-south": 0},
		TTL:         Duration(60 * time.Second),
		TTLDegraded: Duration(10 * time.Second),
		AllDown:     "nodata",
		Answers:     2,
		Salt:        "s3cret-salt",
		Proxy:       defaultProxy(),
		Line:        85,
	})
	check("DialFor(eu-west)", api.DialFor("eu-west"), 50)
	check("DialFor(ap-south)", api.DialFor("ap-south"), 0)
	check("DialFor(us-west)", api.DialFor("us-west"), 100)

	web := c.Services[1]
	check("services[1].mode", web.Mode, "proxy")
	check("services[1].policy", web.Policy, "failover")
	check("services[1].ttl_degraded", web.TTLDegraded.D(), time.Second) // max(2s/4, 1s)
	check("services[1].salt", web.Salt, "web")
	check("services[1].proxy", web.Proxy, Proxy{
		Retries:        1,
		RetryBudget:    10,
		RetryOn:        []string{"connect-failure", "5xx", "429"},
		ConnectTimeout: Duration(500 * time.Millisecond),
		Timeout:        Duration(10 * time.Second),
		MaxRetryBody:   1 << 20,
		Sticky:         "cookie",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")},
	})

	if err := c.Validate(); err != nil {
		t.Errorf("Validate of a loaded config: %v", err)
	}
}

func defaultProxy() Proxy {
	return Proxy{
		Retries:        2,
		RetryBudget:    20,
		RetryOn:        []string{"connect-failure", "timeout", "502", "503", "504"},
		ConnectTimeout: Duration(2 * time.Second),
		Timeout:        Duration(30 * time.Second),
		MaxRetryBody:   64 << 10,
		Sticky:         "none",
	}
}

const minimal = `regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}, {address: "2001:db8::1"}, {hostname: Lb.Example.NET.}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
`

func TestDefaults(t *testing.T) {
	c, err := Parse("min.yaml", []byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Node: Node{
			Name:            host,
			Drain:           Duration(5 * time.Second),
			ShutdownTimeout: Duration(30 * time.Second),
		},
		Listen: Listen{Admin: "127.0.0.1:9053", Connections: Connections{
			Max: DefaultMaxConnections, MaxPerSource: DefaultMaxConnectionsPerSource, IdleTimeout: Duration(DefaultIdleTimeout),
			BusyIdleTimeout: Duration(DefaultBusyIdleTimeout), BusyAt: DefaultBusyAt,
		}},
		State: State{Backend: "file", Path: "meridian-state.json"},
		Fleet: Fleet{NodeTTL: Duration(10 * time.Second), Health: "local", Quorum: 0.5},
		DNS:   DNS{Cookies: true},
		Regions: []Region{{
			Name: "r1",
			Endpoints: []Endpoint{
				{Address: netip.MustParseAddr("192.0.2.1"), URL: "http://192.0.2.1", Weight: 1, Line: 3},
				{Address: netip.MustParseAddr("2001:db8::1"), URL: "http://[2001:db8::1]", Weight: 1, Line: 3},
				{Hostname: "lb.example.net", URL: "http://lb.example.net", Weight: 1, Line: 3},
			},
			Health: Health{
				Type:     "http",
				Path:     "/health/ready",
				Interval: Duration(2 * time.Second),
				Timeout:  Duration(time.Second),
				Rise:     2,
				Fall:     2,
			},
			MinHealthy: 1,
			Line:       2,
		}},
		Zones: []Zone{{
			Name:        "example.com",
			Nameservers: []string{"ns1.example.com"},
			SOA:         SOA{Email: "hostmaster@example.com", TTL: 3600, NegativeTTL: 60, Refresh: 7200, Retry: 3600, Expire: 1209600},
			Line:        5,
		}},
		Services: []Service{{
			Name:        "api",
			Hostnames:   []string{"api.example.com"},
			Mode:        "dns",
			Policy:      "latency",
			Regions:     []string{"r1"},
			TTL:         Duration(30 * time.Second),
			TTLDegraded: Duration(7 * time.Second), // 30s/4 in whole seconds
			AllDown:     "answer",
			Answers:     1,
			Salt:        "api",
			Proxy:       defaultProxy(),
			Line:        8,
		}},
		File: "min.yaml",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", *c, *want)
	}
}

func TestDefaultsACMEAndEtcd(t *testing.T) {
	// The defaults are relative to the config's folder.
	c, err := Parse(filepath.Join("etc", "a.yaml"), []byte(minimal+`tls:
  acme: {email: ops@example.com}
state:
  backend: etcd
  etcd: {endpoints: ["http://127.0.0.1:2379"]}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := *c.TLS.ACME, (ACME{Email: "ops@example.com", CA: DefaultACMECA, Challenge: "dns-01", Storage: filepath.Join("etc", "meridian-certs")}); got != want {
		t.Errorf("acme: got %+v, want %+v", got, want)
	}
	if got, want := c.State.Etcd.Prefix, "/meridian/"; got != want {
		t.Errorf("etcd prefix: got %q, want %q", got, want)
	}
	if got, want := c.State.Path, filepath.Join("etc", "meridian-state.json"); got != want {
		t.Errorf("state path: got %q, want %q", got, want)
	}
}

func TestTTLDegradedDefault(t *testing.T) {
	for _, tc := range []struct {
		ttl  string
		want time.Duration
	}{
		{"30s", 7 * time.Second},
		{"60s", 15 * time.Second},
		{"3s", time.Second},
		{"1s", time.Second},
		{"1h", 15 * time.Minute},
	} {
		t.Run(tc.ttl, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(minimal+"    ttl: "+tc.ttl+"\n"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.Services[0].TTLDegraded.D(); got != tc.want {
				t.Errorf("ttl_degraded: got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	c, err := Parse("m.yaml", []byte(`regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
    health: &probe {path: /ping, interval: 5s, rise: 3}
  - name: r2
    endpoints: [{address: 192.0.2.2}]
    health: {<<: *probe, rise: 4}
zones:
  - name: example.com
    nameservers: [ns1.example.com]
services:
  - name: api
    hostnames: [api.example.com]
    regions: &all [r1, r2]
  - name: web
    hostnames: [web.example.com]
    regions: *all
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	h := c.Regions[1].Health
	if h.Path != "/ping" || h.Interval.D() != 5*time.Second || h.Rise != 4 {
		t.Errorf("merged health: got path %q interval %s rise %d, want /ping 5s 4", h.Path, h.Interval, h.Rise)
	}
	if got := c.Services[1].Regions; !reflect.DeepEqual(got, []string{"r1", "r2"}) {
		t.Errorf("aliased regions: got %v", got)
	}
}

func TestExampleConfig(t *testing.T) {
	t.Setenv("MERIDIAN_OPS_TOKEN", "example-ops-token")
	t.Setenv("MERIDIAN_READ_TOKEN", "example-read-token")
	c, err := Load(filepath.Join("..", "configs", "example.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.Regions) == 0 || len(c.Zones) == 0 || len(c.Services) == 0 {
		t.Errorf("example: got %d regions, %d zones, %d services; want some of each", len(c.Regions), len(c.Zones), len(c.Services))
	}
	if got := c.Admin.Tokens[0].Secret; got != "example-ops-token" {
		t.Errorf("example ops token: got %q", got)
	}
}

func TestExampleConfigNeedsSecrets(t *testing.T) {
	t.Setenv("MERIDIAN_OPS_TOKEN", "")
	if err := os.Unsetenv("MERIDIAN_OPS_TOKEN"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MERIDIAN_READ_TOKEN", "example-read-token")
	_, err := Load(filepath.Join("..", "configs", "example.yaml"))
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.Errs) != 1 || !strings.HasSuffix(errs.Errs[0].Msg, "environment variable MERIDIAN_OPS_TOKEN is not set") {
		t.Errorf("got %v, want one error about MERIDIAN_OPS_TOKEN", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), "loading config: open ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a wrapped not-exist error", err)
	}
}

func TestZoneFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "zones", "example.com.zone"), "ok A 192.0.2.9\nbad A 192.0.2.999\n")
	cfg := filepath.Join(dir, "meridian.yaml")
	write(t, cfg, `zones:
  - name: example.com
    nameservers: [ns1.example.com]
    file: zones/example.com.zone
`)
	_, err := Load(cfg)
	zoneFile := filepath.Join(dir, "zones", "example.com.zone")
	want := zoneFile + `:2: zone "example.com": bad A A: "192.0.2.999"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}

	write(t, zoneFile, "ok A 192.0.2.9\n")
	c, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Zones[0].File != zoneFile {
		t.Errorf("zone file: got %q, want %q", c.Zones[0].File, zoneFile)
	}
	if len(c.Zones[0].RRs) != 1 || c.Zones[0].RRs[0].Header().Rrtype != dns.TypeA || c.Zones[0].RRs[0].Header().Ttl != 3600 {
		t.Errorf("RRs: got %v, want one A record with TTL 3600", c.Zones[0].RRs)
	}
}

func TestValidateBuiltConfig(t *testing.T) {
	c, err := Parse("v.yaml", []byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c.Admin.Tokens = []Token{{Name: "ops", Role: "write", Secret: "set-in-code"}}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with a secret set in code: %v", err)
	}
	c.Services[0].Answers = 0
	c.Services[0].Dials = map[string]int{"r1": 101}
	c.File = ""
	err = c.Validate()
	want := "service \"api\": answers must be at least 1, got 0\nservice \"api\": dial for \"r1\" must be within 0..100, got 101"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  Error
		want string
	}{
		{"file and line", Error{File: "m.yaml", Line: 3, Msg: "bad"}, "m.yaml:3: bad"},
		{"file only", Error{File: "m.yaml", Msg: "bad"}, "m.yaml: bad"},
		{"line only", Error{Line: 3, Msg: "bad"}, "line 3: bad"},
		{"neither", Error{Msg: "bad"}, "bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	errs := &Errors{Errs: []Error{{File: "a", Line: 1, Msg: "x"}, {File: "a", Line: 2, Msg: "y"}}}
	if got, want := errs.Error(), "a:1: x\na:2: y"; got != want {
		t.Errorf("Errors: got %q, want %q", got, want)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestExplicitValuesKept(t *testing.T) {
	c, err := Parse("z.yaml", []byte(`node: {drain: 0s}
regions:
  - name: r1
    endpoints: [{address: 192.0.2.1}]
zones:
  - name: example.com
    nameservers: [ns1.example.com]
    soa: {negative_ttl: 0}
services:
  - name: api
    hostnames: [api.example.com]
    regions: [r1]
    proxy: {retries: 0, retry_budget: 0%, retry_on: [], max_retry_body: 0}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if p := c.Services[0].Proxy; p.Retries != 0 || p.RetryBudget != 0 || len(p.RetryOn) != 0 || p.MaxRetryBody != 0 {
		t.Errorf("explicit zeros replaced by defaults: %+v", p)
	}
	if c.Node.Drain != 0 {
		t.Errorf("drain: got %s, want 0s", c.Node.Drain)
	}
	if got := c.Zones[0].SOA.NegativeTTL; got != 0 {
		t.Errorf("negative_ttl: got %d, want 0", got)
	}
}
