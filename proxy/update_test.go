package proxy

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
)

func TestUpdateRefusesBadInput(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := &named{name: "up"}
		good := &config.Config{
			Regions:  []config.Region{testRegion("a", upstream(t, up.ServeHTTP).URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "a")},
		}
		h := newHarness(t, good, path)

		// variant returns a copy of the good config changed by f.
		variant := func(f func(c *config.Config)) *config.Config {
			c := *good
			c.Regions = append([]config.Region(nil), good.Regions...)
			c.Regions[0].Endpoints = append([]config.Endpoint(nil), good.Regions[0].Endpoints...)
			c.Services = append([]config.Service(nil), good.Services...)
			f(&c)
			return &c
		}
		twoServices := func(f func(a, b *config.Service)) *config.Config {
			return variant(func(c *config.Config) {
				c.Services = append(c.Services, proxyService("web", []string{"www.example.com"}, "a"))
				f(&c.Services[0], &c.Services[1])
			})
		}
		tests := []struct {
			name string
			in   func() Input
			want string
		}{
			{"no config", func() Input { return Input{Policy: policyFor(t, good, nil)} }, "updating proxy: no config"},
			{"no policy", func() Input { return Input{Config: good} }, "updating proxy: no policy snapshot"},
			{"policy for another config", func() Input {
				other := variant(func(c *config.Config) { c.Regions = append(c.Regions, testRegion("b", "http://127.0.0.1:1")) })
				return Input{Config: good, Policy: policyFor(t, other, nil)}
			}, "updating proxy: policy snapshot has 2 regions, config 1"},
			{"region names differ", func() Input {
				other := variant(func(c *config.Config) { c.Regions[0].Name = "z"; c.Services[0].Regions = []string{"z"} })
				return Input{Config: good, Policy: policyFor(t, other, nil)}
			}, `updating proxy: policy region 0 is "z", config region "a"`},
			{"endpoint scheme", func() Input {
				c := variant(func(c *config.Config) { c.Regions[0].Endpoints[0].URL = "ftp://192.0.2.1" })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: region "a" endpoint 0: url "ftp://192.0.2.1": scheme must be http or https`},
			{"endpoint without host", func() Input {
				c := variant(func(c *config.Config) { c.Regions[0].Endpoints[0].URL = "http:///path" })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: region "a" endpoint 0: url "http:///path": want scheme://host[:port][/base-path]`},
			{"endpoint url unparsable", func() Input {
				c := variant(func(c *config.Config) { c.Regions[0].Endpoints[0].URL = "http://[::1" })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: region "a" endpoint 0: url "http://[::1": parse`},
			{"endpoint without anything", func() Input {
				c := variant(func(c *config.Config) { c.Regions[0].Endpoints[0] = config.Endpoint{} })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: region "a" endpoint 0: no url, address or hostname`},
			{"hostname in two services", func() Input {
				c := twoServices(func(a, b *config.Service) { b.Hostnames = []string{"API.example.com."} })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: hostname "api.example.com" belongs to services "api" and "web"`},
			{"two defaults", func() Input {
				c := twoServices(func(a, b *config.Service) { a.Proxy.Default, b.Proxy.Default = true, true })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: services "api" and "web" are both proxy.default`},
			{"retry_on", func() Input {
				c := variant(func(c *config.Config) { c.Services[0].Proxy.RetryOn = []string{"sometimes"} })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: service "api": retry_on "sometimes" is not connect-failure, timeout, 5xx or a status code`},
			{"sticky", func() Input {
				c := variant(func(c *config.Config) { c.Services[0].Proxy.Sticky = "maybe" })
				return Input{Config: c, Policy: policyFor(t, c, nil)}
			}, `updating proxy: service "api": unknown sticky mode "maybe"`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := h.p.Update(tc.in())
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("got error %v, want %q", err, tc.want)
				}
				// The previous table keeps serving.
				if resp, body := h.get(testHost, "/"); resp.StatusCode != 200 || body != "up" {
					t.Errorf("after a refused update: got %d %q, want 200 up", resp.StatusCode, body)
				}
			})
		}
	})
}

func TestEndpointURLDefaults(t *testing.T) {
	tests := []struct {
		ep   config.Endpoint
		want string
	}{
		{config.Endpoint{URL: "https://lb.example.net:8443/base"}, "https://lb.example.net:8443/base"},
		{config.Endpoint{Address: mustAddr("192.0.2.10")}, "http://192.0.2.10"},
		{config.Endpoint{Address: mustAddr("2001:db8::10")}, "http://[2001:db8::10]"},
		{config.Endpoint{Hostname: "us-east.lb.example.net"}, "http://us-east.lb.example.net"},
	}
	for _, tc := range tests {
		u, err := endpointURL(&tc.ep)
		if err != nil || u.String() != tc.want {
			t.Errorf("endpointURL(%+v) = %v, %v; want %s", tc.ep, u, err, tc.want)
		}
	}
}

func TestNoRegionAnswers503(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := &named{name: "up"}
		svc := proxyService("api", []string{testHost}, "a")
		svc.AllDown = "nodata"
		cfg := &config.Config{Regions: []config.Region{testRegion("a", upstream(t, up.ServeHTTP).URL)}, Services: []config.Service{svc}}
		h := newHarness(t, cfg, path)
		h.update(&health.Snapshot{Regions: []health.RegionState{{Name: "a", Up: false, Endpoints: []health.EndpointState{{}}}}})
		resp, body := h.get(testHost, "/")
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no region") {
			t.Errorf("got %d %q, want 503 naming the problem", resp.StatusCode, body)
		}
		if up.count() != 0 {
			t.Errorf("upstream got %d requests, want 0", up.count())
		}
		if got := h.metric("requests", "api", "none", "503"); got != 1 {
			t.Errorf("got %v requests{region=none,code=503}, want 1", got)
		}
	})
}

func TestFailOpenCounted(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := &named{name: "up"}
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("a", upstream(t, up.ServeHTTP).URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "a")},
		}
		failOpen := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_decisions_fail_open_total", Help: "x"}, []string{"service"})
		h := newHarness(t, cfg, func(o *Options) { o.FailOpen = failOpen }, path)
		// The checks say everything is down; the service fails open and the
		// endpoint, which is in fact fine, answers.
		h.update(&health.Snapshot{Regions: []health.RegionState{{Name: "a", Endpoints: []health.EndpointState{{}}}}})
		if resp, body := h.get(testHost, "/"); resp.StatusCode != 200 || body != "up" {
			t.Errorf("got %d %q, want 200 up", resp.StatusCode, body)
		}
		if got := testutil.ToFloat64(failOpen.WithLabelValues("api")); got != 1 {
			t.Errorf("got %v fail-open decisions, want 1", got)
		}
	})
}

func TestMetricsLintAndLifecycle(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := &named{name: "up"}
		cfg := &config.Config{
			Regions:  []config.Region{testRegion("a", upstream(t, up.ServeHTTP).URL), testRegion("b", deadURL(t))},
			Services: []config.Service{proxyService("api", []string{testHost}, "b", "a")},
		}
		h := newHarness(t, cfg, path)
		for i := 0; i < 3; i++ {
			h.get(testHost, "/")
		}
		mfs, err := h.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if len(mfs) != 6 { // requests, duration, retries, failovers, connections, rejected
			t.Errorf("got %d metric families, want 6", len(mfs))
		}
		problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
		if got := h.metric("requests", "api", "a", "200"); got != 3 {
			t.Errorf("got %v requests{a,200}, want 3", got)
		}
		if n := testutil.CollectAndCount(h.p.met.duration); n != 2 {
			t.Errorf("got %d duration series, want 2 (api in a and b)", n)
		}

		// A second proxy on the same registry shares the collectors.
		p2 := New(Options{Logger: quietLogger(), Registerer: h.reg})
		if p2.met.requests != h.p.met.requests {
			t.Error("second proxy registered its own requests collector")
		}

		// Region b leaves the service: its series go; the service goes: all go.
		c2 := *cfg
		c2.Services = []config.Service{proxyService("api", []string{testHost}, "a")}
		if err := h.p.Update(Input{Config: &c2, Policy: policyFor(t, &c2, nil)}); err != nil {
			t.Fatal(err)
		}
		if n := testutil.CollectAndCount(h.p.met.retries); n != 0 {
			t.Errorf("got %d retry series after b left, want 0", n)
		}
		if n := testutil.CollectAndCount(h.p.met.duration); n != 1 {
			t.Errorf("got %d duration series after b left, want 1", n)
		}
		c3 := c2
		c3.Services = []config.Service{proxyService("web", []string{testHost}, "a")}
		if err := h.p.Update(Input{Config: &c3, Policy: policyFor(t, &c3, nil)}); err != nil {
			t.Fatal(err)
		}
		if n := testutil.CollectAndCount(h.p.met.requests); n != 0 {
			t.Errorf("got %d request series after api left, want 0", n)
		}
		if resp, body := h.get(testHost, "/"); resp.StatusCode != 200 || body != "up" {
			t.Errorf("after the reload: got %d %q, want 200 up", resp.StatusCode, body)
		}
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
