package dnsserver

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testConfigFile = "testdata/meridian.yaml"

// loadConfig parses the test configuration.
func loadConfig(t testing.TB) *config.Config {
	t.Helper()
	b, err := os.ReadFile(testConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(testConfigFile, b)
	if err != nil {
		t.Fatalf("parsing %s: %v", testConfigFile, err)
	}
	return cfg
}

// healthFor returns a health snapshot of cfg with every endpoint up but
// those named in down: "region" (all its endpoints) or "region/k".
func healthFor(cfg *config.Config, down ...string) *health.Snapshot {
	off := map[string]bool{}
	for _, d := range down {
		off[d] = true
	}
	hs := &health.Snapshot{Regions: make([]health.RegionState, len(cfg.Regions))}
	for i, r := range cfg.Regions {
		rs := &hs.Regions[i]
		rs.Name = r.Name
		rs.Endpoints = make([]health.EndpointState, len(r.Endpoints))
		for k := range r.Endpoints {
			up := !off[r.Name] && !off[r.Name+"/"+string(rune('0'+k))]
			rs.Endpoints[k].Up = up
			rs.Up = rs.Up || up
		}
	}
	return hs
}

// snapshotFor builds the policy snapshot the node would build for cfg and
// hs (no dials or overrides beyond the config's).
func snapshotFor(t testing.TB, cfg *config.Config, hs *health.Snapshot) *policy.Snapshot {
	t.Helper()
	idx := map[string]int{}
	regions := make([]policy.Region, len(cfg.Regions))
	for i, r := range cfg.Regions {
		idx[r.Name] = i
		regions[i] = policy.Region{Name: r.Name, Up: hs.RegionUp(i)}
		if r.Location != nil {
			regions[i].Location = policy.Point{Lat: r.Location.Lat, Lon: r.Location.Lon, Valid: true}
		}
	}
	services := make([]policy.Service, len(cfg.Services))
	for j, s := range cfg.Services {
		kind, err := policy.ParseKind(s.Policy)
		if err != nil {
			t.Fatal(err)
		}
		ps := policy.Service{Name: s.Name, Kind: kind, FailClosed: s.AllDown == "nodata", Salt: policy.HashString(s.Salt)}
		if s.Mode == "proxy" {
			ps.Mode = policy.ModeProxy
		}
		pos := map[string]int{}
		for p, r := range s.Regions {
			pos[r] = p
			ps.Regions = append(ps.Regions, idx[r])
			ps.Dials = append(ps.Dials, s.DialFor(r))
		}
		for _, g := range s.Geo {
			var ru policy.Rule
			for _, m := range g.Match {
				ru.Match = append(ru.Match, strings.ToUpper(m))
			}
			for _, r := range g.Regions {
				ru.Regions = append(ru.Regions, pos[r])
			}
			ru.Fence = g.Fence
			ps.Rules = append(ps.Rules, ru)
		}
		services[j] = ps
	}
	snap, err := policy.NewSnapshot(regions, services, policy.Point{})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// testGeo is a small GeoIP2-City database: GB on 81.2.0.0/16, CN on
// 175.16.199.0/24, US-WA on 216.160.83.0/24 and DE on 2001:db8:1::/48.
func testGeo(t testing.TB) *geo.DB {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", IPVersion: 6, RecordSize: 24, Languages: []string{"en"}, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	iso := func(c string) mmdbtype.Map { return mmdbtype.Map{"iso_code": mmdbtype.String(c)} }
	cont := func(c string) mmdbtype.Map { return mmdbtype.Map{"code": mmdbtype.String(c)} }
	loc := func(lat, lon float64) mmdbtype.Map {
		return mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon)}
	}
	nets := map[string]mmdbtype.Map{
		"81.2.0.0/16":     {"continent": cont("EU"), "country": iso("GB"), "location": loc(51.5, -0.1)},
		"175.16.199.0/24": {"continent": cont("AS"), "country": iso("CN"), "location": loc(43.9, 125.3)},
		"216.160.83.0/24": {"continent": cont("NA"), "country": iso("US"), "subdivisions": mmdbtype.Slice{iso("WA")}, "location": loc(47.3, -122.3)},
		"2001:db8:1::/48": {"continent": cont("EU"), "country": iso("DE"), "location": loc(50.1, 8.7)},
		"198.18.0.0/15":   {"continent": cont("OC"), "country": iso("AU")},
		"41.0.0.0/10":     {"continent": cont("AF"), "country": iso("ZA"), "location": loc(-26.2, 28.0)},
		"45.160.0.0/16":   {"continent": cont("SA"), "country": iso("BR")},
	}
	for cidr, rec := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	db, err := geo.OpenBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// fixture is a server with the test configuration loaded.
type fixture struct {
	s        *Server
	cfg      *config.Config
	geo      *geo.DB
	reg      *prometheus.Registry
	failOpen *prometheus.CounterVec
	addr     string // UDP and TCP, once listening
}

// setup changes a fixture's input before it is loaded.
type setup struct {
	down     []string // regions or region/endpoint down
	degraded []string // services answering with ttl_degraded
}

func newFixture(t testing.TB, su setup) *fixture {
	t.Helper()
	f := &fixture{cfg: loadConfig(t), geo: testGeo(t), reg: prometheus.NewRegistry()}
	f.failOpen = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_decisions_fail_open_total", Help: "x"}, []string{"service"})
	f.reg.MustRegister(f.failOpen)
	f.s = New(Options{Registerer: f.reg, FailOpen: f.failOpen, TCPIdleTimeout: 2 * time.Second})
	if err := f.s.Update(f.input(t, su)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return f
}

func (f *fixture) input(t testing.TB, su setup) Input {
	hs := healthFor(f.cfg, su.down...)
	deg := make([]bool, len(f.cfg.Services))
	for _, d := range su.degraded {
		for j, s := range f.cfg.Services {
			if s.Name == d {
				deg[j] = true
			}
		}
	}
	return Input{Config: f.cfg, Geo: f.geo, Policy: snapshotFor(t, f.cfg, hs), Health: hs, Degraded: deg}
}

// listen starts the fixture's server on a random loopback port.
func (f *fixture) listen(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.s.ListenAndServe(ctx, []string{"127.0.0.1:0"}); err != nil {
		cancel()
		t.Fatalf("ListenAndServe: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := f.s.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	f.addr = f.s.Addrs()[0].String()
}

// exchange sends m over network ("udp" or "tcp") and returns the answer.
func (f *fixture) exchange(t testing.TB, m *dns.Msg, network string) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, f.addr)
	if err != nil {
		t.Fatalf("exchange %s over %s: %v", m.Question[0].String(), network, err)
	}
	return r
}

// answerBytes answers q in memory as coming from src.
func (f *fixture) answerBytes(q []byte, src string) []byte {
	return f.s.answer(q, netip.MustParseAddr(src), false, make([]byte, 0, 512))
}

// question builds a query; ecs is "" or a subnet ("81.2.69.0/24").
type question struct {
	name  string
	qtype uint16
	class uint16
	edns  bool
	size  uint16
	do    bool
	ecs   string
	// cookie is a COOKIE option's data in hex: a client cookie, or a
	// client and a server cookie.
	cookie string
}

func (q question) msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	m.Id = 4242
	if q.class != 0 {
		m.Question[0].Qclass = q.class
	}
	if q.edns || q.ecs != "" || q.do || q.size != 0 || q.cookie != "" {
		size := q.size
		if size == 0 {
			size = 4096
		}
		m.SetEdns0(size, q.do)
		if q.ecs != "" {
			p := netip.MustParsePrefix(q.ecs)
			sub := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits()), Address: net.IP(p.Addr().AsSlice())}
			sub.Family = 1
			if p.Addr().Is6() {
				sub.Family = 2
			}
			m.IsEdns0().Option = append(m.IsEdns0().Option, sub)
		}
		if q.cookie != "" {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: q.cookie})
		}
	}
	return m
}

// cookieOf returns the COOKIE option of an answer in hex, or "".
func cookieOf(m *dns.Msg) string {
	if o := m.IsEdns0(); o != nil {
		for _, op := range o.Option {
			if c, ok := op.(*dns.EDNS0_COOKIE); ok {
				return c.Cookie
			}
		}
	}
	return ""
}

// pinCookieClock makes the server's cookies use the fixed time at.
func (f *fixture) pinCookieClock(at time.Time) {
	f.s.jar.now = func() time.Time { return at }
}

// setRRL reloads the fixture with dns.rrl set to r (nil: off).
func (f *fixture) setRRL(t testing.TB, r *config.RRL) {
	t.Helper()
	f.cfg.DNS.RRL = r
	if err := f.s.Update(f.input(t, setup{})); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// ecsOf returns the ECS option of an answer, or nil.
func ecsOf(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, op := range o.Option {
			if s, ok := op.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}

// rrStrings renders records one per string, tabs as spaces.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	return out
}

func packMsg(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// counterValue returns the value of the counter name with labels (all of
// them) in reg, 0 when there is none.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
