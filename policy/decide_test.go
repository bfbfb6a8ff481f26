package policy

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// regions: us-east (Virginia), eu-west (Ireland), ap-south (Mumbai).
func testRegions() []Region {
	return []Region{
		{Name: "us-east", Location: Point{38.9, -77.4, true}, Up: true},
		{Name: "eu-west", Location: Point{53.3, -6.3, true}, Up: true},
		{Name: "ap-south", Location: Point{19.1, 72.9, true}, Up: true},
	}
}

func snap(t testing.TB, regions []Region, svcs ...Service) *Snapshot {
	t.Helper()
	for i := range svcs {
		if svcs[i].Regions == nil {
			svcs[i].Regions = []int{0, 1, 2}
		}
		if svcs[i].Dials == nil {
			svcs[i].Dials = make([]int, len(svcs[i].Regions))
			for j := range svcs[i].Dials {
				svcs[i].Dials[j] = 100
			}
		}
		if svcs[i].Salt == 0 {
			svcs[i].Salt = HashString(svcs[i].Name)
		}
	}
	s, err := NewSnapshot(regions, svcs, Point{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func names(s *Snapshot, d *Decision) []string {
	var out []string
	for _, r := range d.Regions() {
		out = append(out, s.Regions[r].Name)
	}
	return out
}

func first(s *Snapshot, d *Decision) string {
	if d.N == 0 {
		return ""
	}
	return s.Regions[d.Order[0]].Name
}

var (
	london   = Client{Addr: netip.MustParseAddr("81.2.69.142"), Country: "GB", Continent: "EU", Location: Point{51.5, -0.09, true}}
	berlin   = Client{Addr: netip.MustParseAddr("5.1.1.1"), Country: "DE", Continent: "EU", Location: Point{52.5, 13.4, true}}
	sanDiego = Client{Addr: netip.MustParseAddr("214.78.120.1"), Country: "US", Continent: "NA", Subdivision: "CA", Location: Point{32.7, -117.1, true}}
	seattle  = Client{Addr: netip.MustParseAddr("216.160.83.56"), Country: "US", Continent: "NA", Subdivision: "WA", Location: Point{47.25, -122.3, true}}
	delhi    = Client{Addr: netip.MustParseAddr("49.1.1.1"), Country: "IN", Continent: "AS", Location: Point{28.6, 77.2, true}}
	nowhere  = Client{Addr: netip.MustParseAddr("127.0.0.1")}
)

func TestDecideTable(t *testing.T) {
	down := func(i int) []Region { r := testRegions(); r[i].Up = false; return r }
	forced := func(i int, o Override) []Region { r := testRegions(); r[i].Override = o; return r }
	allDown := func() []Region {
		r := testRegions()
		for i := range r {
			r[i].Up = false
		}
		return r
	}
	geoRules := []Rule{
		{Match: []string{"DE", "FR"}, Regions: []int{1}},
		{Match: []string{"EU"}, Regions: []int{1, 0}},
		{Match: []string{"US-CA"}, Regions: []int{2}, Fence: true},
		{Match: []string{"DEFAULT"}, Regions: []int{0}},
	}
	tests := []struct {
		name     string
		regions  []Region
		svc      Service
		client   Client
		want     []string
		failOpen bool
		noData   bool
	}{
		{"failover order", testRegions(), Service{Kind: Failover}, london, []string{"us-east", "eu-west", "ap-south"}, false, false},
		{"failover skips down", down(0), Service{Kind: Failover}, london, []string{"eu-west", "ap-south"}, false, false},
		{"forced up beats failing checks", func() []Region { r := down(0); r[0].Override = ForceUp; return r }(), Service{Kind: Failover}, london, []string{"us-east", "eu-west", "ap-south"}, false, false},
		{"forced down never eligible", forced(0, ForceDown), Service{Kind: Failover}, london, []string{"eu-west", "ap-south"}, false, false},
		{"dial 0 drains", testRegions(), Service{Kind: Failover, Dials: []int{0, 100, 100}}, london, []string{"eu-west", "ap-south"}, false, false},
		{"all down fails open", allDown(), Service{Kind: Failover}, london, []string{"us-east", "eu-west", "ap-south"}, true, false},
		{"fail open skips forced down", func() []Region { r := allDown(); r[0].Override = ForceDown; return r }(), Service{Kind: Failover}, london, []string{"eu-west", "ap-south"}, true, false},
		{"fail closed", allDown(), Service{Kind: Failover, FailClosed: true}, london, nil, false, true},
		{"all forced down is nodata", func() []Region {
			r := testRegions()
			for i := range r {
				r[i].Override = ForceDown
			}
			return r
		}(), Service{Kind: Failover}, london, nil, false, true},
		{"geo country rule then distance (Mumbai nearer Berlin than Virginia)", testRegions(), Service{Kind: Geo, Rules: geoRules}, berlin, []string{"eu-west", "ap-south", "us-east"}, false, false},
		{"geo continent rule", testRegions(), Service{Kind: Geo, Rules: geoRules}, london, []string{"eu-west", "us-east", "ap-south"}, false, false},
		{"geo subdivision fenced", testRegions(), Service{Kind: Geo, Rules: geoRules}, sanDiego, []string{"ap-south"}, false, false},
		{"geo fenced all down fails open inside fence", down(2), Service{Kind: Geo, Rules: geoRules}, sanDiego, []string{"ap-south"}, true, false},
		{"geo default then distance", testRegions(), Service{Kind: Geo, Rules: geoRules}, delhi, []string{"us-east", "ap-south", "eu-west"}, false, false},
		{"geo rule region down falls to distance", down(1), Service{Kind: Geo, Rules: geoRules}, berlin, []string{"ap-south", "us-east"}, false, false},
		{"latency nearest", testRegions(), Service{Kind: Latency}, delhi, []string{"ap-south", "eu-west", "us-east"}, false, false},
		{"latency london", testRegions(), Service{Kind: Latency}, london, []string{"eu-west", "us-east", "ap-south"}, false, false},
		{"latency unknown client keeps order", testRegions(), Service{Kind: Latency}, nowhere, []string{"us-east", "eu-west", "ap-south"}, false, false},
		{"latency proxy uses rtt order", testRegions(), Service{Kind: Latency, Mode: ModeProxy, RTTOrder: []int{2, 0, 1}}, london, []string{"ap-south", "us-east", "eu-west"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.svc.Name = "api"
			s := snap(t, tt.regions, tt.svc)
			var d Decision
			Decide(s, 0, &tt.client, &d)
			got := names(s, &d)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
			if d.FailOpen != tt.failOpen || d.NoData != tt.noData {
				t.Fatalf("got failOpen=%v noData=%v, want %v %v", d.FailOpen, d.NoData, tt.failOpen, tt.noData)
			}
			// Explain must reach the same decision.
			d2, ex := Explain(s, 0, &tt.client)
			if d2 != d || strings.Join(ex.Order, ",") != strings.Join(got, ",") ||
				ex.FailOpen != d.FailOpen || ex.NoData != d.NoData {
				t.Fatalf("explain %v (failOpen=%v noData=%v), decide %v", ex.Order, ex.FailOpen, ex.NoData, got)
			}
		})
	}
}

func TestGeoSpecificity(t *testing.T) {
	rules := []Rule{
		{Match: []string{"DEFAULT"}, Regions: []int{0}},
		{Match: []string{"NA"}, Regions: []int{1}},
		{Match: []string{"US"}, Regions: []int{2}},
		{Match: []string{"US-CA"}, Regions: []int{0}},
	}
	s := snap(t, testRegions(), Service{Name: "api", Kind: Geo, Rules: rules})
	for _, tt := range []struct {
		name   string
		client Client
		want   string
	}{
		{"subdivision beats country", sanDiego, "us-east"},
		{"country beats continent", seattle, "ap-south"},
		{"continent", Client{Country: "CA", Continent: "NA"}, "eu-west"},
		{"default", london, "us-east"},
		{"NA is the continent, not Namibia", Client{Country: "NA", Continent: "AF"}, "us-east"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d Decision
			Decide(s, 0, &tt.client, &d)
			if got := first(s, &d); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLatencyHysteresis(t *testing.T) {
	// Two regions 5% apart from the client keep priority order; 20% apart
	// the nearer one wins.
	regs := []Region{
		{Name: "a", Location: Point{0, 10.5, true}, Up: true},
		{Name: "b", Location: Point{0, 10, true}, Up: true},
	}
	c := Client{Addr: netip.MustParseAddr("1.2.3.4"), Location: Point{0, 0, true}}
	s := snap(t, regs, Service{Name: "x", Kind: Latency, Regions: []int{0, 1}})
	var d Decision
	Decide(s, 0, &c, &d)
	if got := first(s, &d); got != "a" {
		t.Fatalf("within hysteresis: got %s, want a (priority order)", got)
	}
	regs = []Region{
		{Name: "a", Location: Point{0, 13, true}, Up: true},
		{Name: "b", Location: Point{0, 10, true}, Up: true},
	}
	s = snap(t, regs, Service{Name: "x", Kind: Latency, Regions: []int{0, 1}})
	Decide(s, 0, &c, &d)
	if got := first(s, &d); got != "b" {
		t.Fatalf("beyond hysteresis: got %s, want b", got)
	}
}

func TestRankByRTT(t *testing.T) {
	ms := func(v ...float64) []float64 { return v }
	tests := []struct {
		name string
		prev []int
		rtt  []float64
		want []int
	}{
		{"no prev sorts", nil, ms(30, 10, 20), []int{1, 2, 0}},
		{"within 10% keeps prev", []int{0, 1}, ms(10.5, 10), []int{0, 1}},
		{"clear win overtakes", []int{0, 1}, ms(12, 10), []int{1, 0}},
		{"unknown last", nil, ms(0, 50), []int{1, 0}},
		{"bad prev ignored", []int{7, 1, 1}, ms(10, 10, 10), []int{1, 0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RankByRTT(tt.prev, tt.rtt)
			for i := range tt.want {
				if i >= len(got) || got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// clientN returns the i-th of many distinct /24 clients.
func clientN(i int) Client {
	return Client{Addr: netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 7})}
}

func TestDialSplitProperty(t *testing.T) {
	const n = 100000
	for _, tt := range []struct {
		name  string
		dials []int
		kind  Kind
		want  []float64 // expected shares per region position
	}{
		{"failover 10%", []int{10, 100, 100}, Failover, []float64{0.10, 0.90, 0}},
		{"failover 50/50", []int{50, 100, 100}, Failover, []float64{0.50, 0.50, 0}},
		{"failover 90 spill 30", []int{90, 30, 100}, Failover, []float64{0.90, 0.03, 0.07}},
		{"weighted 1:3:6", []int{10, 30, 60}, Weighted, []float64{0.1, 0.3, 0.6}},
		{"weighted 33:33:34", []int{33, 33, 34}, Weighted, []float64{0.33, 0.33, 0.34}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := snap(t, testRegions(), Service{Name: "api", Kind: tt.kind, Dials: tt.dials})
			counts := make([]int, 3)
			var d Decision
			for i := 0; i < n; i++ {
				c := clientN(i)
				Decide(s, 0, &c, &d)
				counts[d.Order[0]]++
				if !d.ByHash {
					t.Fatal("dial split without ByHash")
				}
			}
			for i, w := range tt.want {
				got := float64(counts[i]) / n
				if math.Abs(got-w) > 0.01 {
					t.Errorf("region %d: got share %.4f, want %.2f ±0.01", i, got, w)
				}
			}
		})
	}
}

func TestDialDeterministicAndMonotonic(t *testing.T) {
	// A client kept at dial 10 stays kept at dial 50 (shifts only add
	// clients), and the same /24 gets the same answer.
	s10 := snap(t, testRegions(), Service{Name: "api", Kind: Failover, Dials: []int{10, 100, 100}})
	s50 := snap(t, testRegions(), Service{Name: "api", Kind: Failover, Dials: []int{50, 100, 100}})
	var d1, d2, d3 Decision
	for i := 0; i < 20000; i++ {
		c := clientN(i)
		Decide(s10, 0, &c, &d1)
		Decide(s50, 0, &c, &d2)
		if d1.Order[0] == 0 && d2.Order[0] != 0 {
			t.Fatalf("client %v kept at 10%% but not at 50%%", c.Addr)
		}
		c2 := c
		c2.Addr = netip.AddrFrom4([4]byte{c.Addr.As4()[0], c.Addr.As4()[1], c.Addr.As4()[2], 200})
		Decide(s10, 0, &c2, &d3)
		if d3.Order[0] != d1.Order[0] {
			t.Fatalf("same /24 got different regions")
		}
	}
}

func TestFenceProperty(t *testing.T) {
	rules := []Rule{
		{Match: []string{"US-CA"}, Regions: []int{1}, Fence: true},
		{Match: []string{"DEFAULT"}, Regions: []int{0}},
	}
	// Every combination of health, override and dial: a fenced client only
	// ever gets eu-west, or nothing.
	for mask := 0; mask < 1<<9; mask++ {
		regs := testRegions()
		dials := []int{100, 100, 100}
		for i := 0; i < 3; i++ {
			bits := mask >> (3 * i) & 7
			regs[i].Up = bits&1 == 0
			if bits&2 != 0 {
				regs[i].Override = ForceDown
			}
			if bits&4 != 0 {
				dials[i] = 0
			}
		}
		s := snap(t, regs, Service{Name: "api", Kind: Geo, Rules: rules, Dials: dials})
		for i := 0; i < 200; i++ {
			c := sanDiego
			c.Addr = clientN(i).Addr
			var d Decision
			Decide(s, 0, &c, &d)
			for _, r := range d.Regions() {
				if s.Regions[r].Name != "eu-west" {
					t.Fatalf("mask %b: fenced client answered %s", mask, s.Regions[r].Name)
				}
			}
		}
	}
}

func TestForcedDownNeverAnswered(t *testing.T) {
	for _, kind := range []Kind{Failover, Geo, Latency, Weighted} {
		for upMask := 0; upMask < 8; upMask++ {
			regs := testRegions()
			regs[1].Override = ForceDown
			for i := range regs {
				regs[i].Up = upMask>>i&1 == 1
			}
			s := snap(t, regs, Service{Name: "api", Kind: kind, Rules: []Rule{{Match: []string{"DEFAULT"}, Regions: []int{1}}}})
			for i := 0; i < 500; i++ {
				c := london
				c.Addr = clientN(i).Addr
				var d Decision
				Decide(s, 0, &c, &d)
				for _, r := range d.Regions() {
					if r == 1 {
						t.Fatalf("%v up=%03b: forced-down region answered (failOpen=%v)", kind, upMask, d.FailOpen)
					}
				}
			}
		}
	}
}

func TestNewSnapshotErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		svc  Service
		want string
	}{
		{"no regions", Service{Name: "a", Regions: []int{}, Dials: []int{}}, `service "a": 0 regions, want 1..32`},
		{"dial count", Service{Name: "a", Regions: []int{0}, Dials: []int{}}, `service "a": 0 dials for 1 regions`},
		{"bad index", Service{Name: "a", Regions: []int{9}, Dials: []int{1}}, `service "a": region index 9 out of range`},
		{"bad dial", Service{Name: "a", Regions: []int{0}, Dials: []int{101}}, `service "a": dial 101 outside 0..100`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSnapshot(testRegions(), []Service{tt.svc}, Point{})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	regs := testRegions()
	regs[0].Up = false
	regs[2].RTT = 5 * time.Millisecond
	s := snap(t, regs, Service{Name: "api", Kind: Failover, Dials: []int{100, 40, 100}})
	c := clientN(3)
	d, ex := Explain(s, 0, &c)
	if ex.Regions[0].Eligible || ex.Regions[0].Reason != "health checks failing" {
		t.Fatalf("us-east verdict %+v", ex.Regions[0])
	}
	if ex.Regions[1].Roll == nil || ex.Regions[1].Kept == nil {
		t.Fatalf("eu-west has no roll: %+v", ex.Regions[1])
	}
	var dd Decision
	Decide(s, 0, &c, &dd)
	if dd != d || ex.Order[0] != s.Regions[d.Order[0]].Name || ex.Outcome != "answer "+ex.Order[0] {
		t.Fatalf("explain %+v disagrees with decide %v", ex, names(s, &dd))
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	rules := []Rule{{Match: []string{"EU"}, Regions: []int{1}}, {Match: []string{"DEFAULT"}, Regions: []int{0}}}
	s := snap(t, testRegions(),
		Service{Name: "geo", Kind: Geo, Rules: rules, Dials: []int{100, 50, 100}},
		Service{Name: "lat", Kind: Latency},
		Service{Name: "w", Kind: Weighted, Dials: []int{10, 20, 70}})
	c := london
	var d Decision
	for svc := range s.Services {
		if n := testing.AllocsPerRun(100, func() { Decide(s, svc, &c, &d) }); n != 0 {
			t.Errorf("service %s: %v allocs per decision", s.Services[svc].Name, n)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	rules := []Rule{{Match: []string{"EU"}, Regions: []int{1}}, {Match: []string{"DEFAULT"}, Regions: []int{0}}}
	s := snap(b, testRegions(),
		Service{Name: "geo", Kind: Geo, Rules: rules, Dials: []int{100, 50, 100}},
		Service{Name: "lat", Kind: Latency},
		Service{Name: "w", Kind: Weighted, Dials: []int{10, 20, 70}})
	for svc := range s.Services {
		b.Run(s.Services[svc].Name, func(b *testing.B) {
			b.ReportAllocs()
			c := london
			var d Decision
			for i := 0; b.Loop(); i++ {
				c.Addr = clientN(i & 0xffff).Addr
				Decide(s, svc, &c, &d)
			}
		})
	}
}
