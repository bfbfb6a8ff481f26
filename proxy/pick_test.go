package proxy

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
)

func testEndpoints(weights ...int) []*endpoint {
	var eps []*endpoint
	for k, w := range weights {
		eps = append(eps, &endpoint{idx: k, weight: w, bit: 1 << k, hash: uint64(k+1) * 0x9e3779b97f4a7c15, st: new(endpointState)})
	}
	return eps
}

func share(eps []*endpoint, n int, pick func() *endpoint) []float64 {
	counts := make([]float64, len(eps))
	for i := 0; i < n; i++ {
		counts[pick().idx]++
	}
	for i := range counts {
		counts[i] /= float64(n)
	}
	return counts
}

func TestLeastLoaded(t *testing.T) {
	const n = 4000
	tests := []struct {
		name     string
		weights  []int
		inflight []int64
		tried    uint64
		want     []float64
	}{
		{"idle: by weight", []int{3, 1}, []int64{0, 0}, 0, []float64{.75, .25}},
		{"busy one loses unless drawn twice", []int{1, 1}, []int64{50, 0}, 0, []float64{.25, .75}},
		{"load per weight: 2 of weight 2 beats 2 of weight 1", []int{2, 1}, []int64{2, 2}, 0, []float64{1 - 1.0/9, 1.0 / 9}},
		{"tried endpoints skipped", []int{1, 1, 1}, []int64{0, 0, 0}, 0b011, []float64{0, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := testEndpoints(tc.weights...)
			for i, l := range tc.inflight {
				eps[i].st.inflight.Store(l)
			}
			got := share(eps, n, func() *endpoint { return leastLoaded(eps, tc.tried) })
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 0.05 {
					t.Errorf("got shares %.3f, want %.3f", got, tc.want)
					break
				}
			}
		})
	}
	if got := leastLoaded(testEndpoints(1, 1), 0b11); got != nil {
		t.Errorf("all tried: got endpoint %d, want none", got.idx)
	}
	if got := leastLoaded(nil, 0); got != nil {
		t.Errorf("no endpoints: got %d, want none", got.idx)
	}
}

func TestRendezvous(t *testing.T) {
	eps := testEndpoints(1, 1, 1, 1)
	// Stable per client, spread over clients, and only the clients of a
	// removed endpoint move.
	moved, spread := 0, map[int]bool{}
	for c := 0; c < 1000; c++ {
		h := clientHash(netip.AddrFrom4([4]byte{198, 51, byte(c >> 8), byte(c)}))
		a := rendezvous(eps, h)
		if rendezvous(eps, h) != a {
			t.Fatal("same client, different endpoint")
		}
		spread[a.idx] = true
		if b := rendezvous(eps[:3], h); b != a {
			moved++
			if a.idx != 3 {
				t.Fatalf("client of endpoint %d moved to %d when endpoint 3 left", a.idx, b.idx)
			}
		}
	}
	if len(spread) != 4 {
		t.Errorf("clients reached %d endpoints, want all 4", len(spread))
	}
	if moved < 150 || moved > 350 {
		t.Errorf("%d of 1000 clients moved when one of 4 endpoints left, want about 250", moved)
	}
}

// namedRegion is a region of n named upstreams.
func namedRegion(t *testing.T, region string, n int) (config.Region, []*named) {
	var ups []*named
	var urls []string
	for k := 0; k < n; k++ {
		u := &named{name: fmt.Sprintf("%s%d", region, k)}
		ups = append(ups, u)
		urls = append(urls, upstream(t, u.ServeHTTP).URL)
	}
	return testRegion(region, urls...), ups
}

func TestStickyClientIP(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		ra, _ := namedRegion(t, "a", 4)
		svc := proxyService("api", []string{testHost}, "a")
		svc.Proxy.Sticky = "client-ip"
		svc.Proxy.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		h := newHarness(t, &config.Config{Regions: []config.Region{ra}, Services: []config.Service{svc}}, path)
		seen := map[string]bool{}
		for c := 0; c < 20; c++ {
			client := fmt.Sprintf("203.0.113.%d", c)
			first := ""
			for i := 0; i < 5; i++ {
				req := h.request(http.MethodGet, testHost, "/", nil)
				req.Header.Set("X-Forwarded-For", client)
				_, body := h.do(req)
				if first == "" {
					first = body
				} else if body != first {
					t.Fatalf("client %s went to %s, then %s", client, first, body)
				}
			}
			seen[first] = true
		}
		if len(seen) < 2 {
			t.Errorf("20 clients all went to %v, want them spread", seen)
		}
	})
}

func TestStickyCookie(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		ra, _ := namedRegion(t, "a", 3)
		rb, _ := namedRegion(t, "b", 1)
		rc, _ := namedRegion(t, "c", 1)
		svc := proxyService("api", []string{testHost}, "a", "b", "c")
		svc.Proxy.Sticky = "cookie"
		svc.Dials = map[string]int{"c": 0}
		h := newHarness(t, &config.Config{Regions: []config.Region{ra, rb, rc}, Services: []config.Service{svc}}, path)

		get := func(cookie string) (body, setCookie string) {
			t.Helper()
			req := h.request(http.MethodGet, testHost, "/", nil)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			resp, body := h.do(req)
			return body, resp.Header.Get("Set-Cookie")
		}
		body, set := get("")
		if !strings.HasPrefix(body, "a") || !strings.HasPrefix(set, "meridian_region=a:") {
			t.Fatalf("first request: got %q with Set-Cookie %q, want region a and its cookie", body, set)
		}
		if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "Path=/") {
			t.Errorf("got Set-Cookie %q, want Path=/ and HttpOnly", set)
		}
		cookie, _, _ := strings.Cut(set, ";")
		for i := 0; i < 10; i++ {
			if b, s := get(cookie); b != body || s != "" {
				t.Fatalf("with cookie %s: got %q (Set-Cookie %q), want %q and no new cookie", cookie, b, s, body)
			}
		}

		tests := []struct {
			name, cookie, want, wantSet string
		}{
			{"eligible second region honoured", "meridian_region=b", "b0", "meridian_region=b:"},
			{"drained region ignored", "meridian_region=c", "a", "meridian_region=a:"},
			{"unknown region ignored", "meridian_region=zz:1234", "a", "meridian_region=a:"},
			{"stale endpoint id: region kept", "meridian_region=b:ffff", "b0", "meridian_region=b:"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b, s := get(tc.cookie)
				if !strings.HasPrefix(b, tc.want) || !strings.HasPrefix(s, tc.wantSet) {
					t.Errorf("got %q with Set-Cookie %q, want %q and %q…", b, s, tc.want, tc.wantSet)
				}
			})
		}
	})
}

// healthSnapshot marks the endpoints listed in down (region → endpoints)
// down, or ejected.
func healthSnapshot(cfg *config.Config, down map[int][]int, ejected bool) *health.Snapshot {
	hs := &health.Snapshot{}
	for i, r := range cfg.Regions {
		rs := health.RegionState{Name: r.Name, Up: true}
		for range r.Endpoints {
			rs.Endpoints = append(rs.Endpoints, health.EndpointState{Up: true})
		}
		for _, k := range down[i] {
			if ejected {
				rs.Endpoints[k].Ejected = true
			} else {
				rs.Endpoints[k].Up = false
			}
		}
		hs.Regions = append(hs.Regions, rs)
	}
	return hs
}

func TestEndpointHealth(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		ra, ua := namedRegion(t, "a", 3)
		rb, ub := namedRegion(t, "b", 1)
		cfg := &config.Config{Regions: []config.Region{ra, rb}, Services: []config.Service{proxyService("api", []string{testHost}, "a", "b")}}
		h := newHarness(t, cfg, path)

		h.update(healthSnapshot(cfg, map[int][]int{0: {0, 2}}, false))
		for i := 0; i < 20; i++ {
			if _, body := h.get(testHost, "/"); body != "a1" {
				t.Fatalf("request %d went to %s, want a1, the only healthy endpoint", i, body)
			}
		}
		// All of a ejected while the region still counts as up: b serves.
		h.update(healthSnapshot(cfg, map[int][]int{0: {0, 1, 2}}, true))
		for i := 0; i < 10; i++ {
			if _, body := h.get(testHost, "/"); body != "b0" {
				t.Fatalf("request %d went to %s, want b0", i, body)
			}
		}
		// Nothing usable anywhere: every endpoint is tried rather than none.
		h.update(healthSnapshot(cfg, map[int][]int{0: {0, 1, 2}, 1: {0}}, false))
		if resp, body := h.get(testHost, "/"); resp.StatusCode != 200 || !strings.HasPrefix(body, "a") {
			t.Errorf("nothing healthy: got %d %q, want 200 from a", resp.StatusCode, body)
		}
		if a := ua[0].count() + ua[1].count() + ua[2].count(); a != 21 || ub[0].count() != 10 {
			t.Errorf("got %d hits in a and %d in b, want 21 and 10", a, ub[0].count())
		}
	})
}
