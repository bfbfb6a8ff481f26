package health

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/meridian-edge/meridian/config"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := fastHealth("http")
	h.Rise, h.Fall = 1, 1
	c := stepChecker(t, []config.Region{
		regionOf("eu", h, 1, "http://10.0.0.1", "http://10.0.0.2"),
		regionOf("us", fastHealth("none"), 1, "http://10.0.1.1"),
	}, Options{Registerer: reg})
	eps := c.regions[0].endpoints
	c.apply(eps[0], okResult(20*time.Millisecond))
	c.apply(eps[0], okResult(20*time.Millisecond))
	c.apply(eps[1], okResult(40*time.Millisecond))
	c.apply(eps[1], errorResult(errTimeoutForTest{}))
	c.apply(eps[1], statusResult(503))
	for range ejectAfterErrors {
		c.Report(1, 0, Outcome5xx)
	}

	want := `
# HELP meridian_endpoint_up Whether the endpoint takes traffic: probes pass and it is not ejected (1) or not (0).
# TYPE meridian_endpoint_up gauge
meridian_endpoint_up{endpoint="http://10.0.0.1",region="eu"} 1
meridian_endpoint_up{endpoint="http://10.0.0.2",region="eu"} 0
meridian_endpoint_up{endpoint="http://10.0.1.1",region="us"} 0
# HELP meridian_health_checks_total Health probes run, by region, endpoint and result (ok, fail, timeout).
# TYPE meridian_health_checks_total counter
meridian_health_checks_total{endpoint="http://10.0.0.1",region="eu",result="fail"} 0
meridian_health_checks_total{endpoint="http://10.0.0.1",region="eu",result="ok"} 2
meridian_health_checks_total{endpoint="http://10.0.0.1",region="eu",result="timeout"} 0
meridian_health_checks_total{endpoint="http://10.0.0.2",region="eu",result="fail"} 1
meridian_health_checks_total{endpoint="http://10.0.0.2",region="eu",result="ok"} 1
meridian_health_checks_total{endpoint="http://10.0.0.2",region="eu",result="timeout"} 1
# HELP meridian_region_rtt_seconds Mean probe round-trip time of the region's min_healthy fastest healthy endpoints; 0 when unknown.
# TYPE meridian_region_rtt_seconds gauge
meridian_region_rtt_seconds{region="eu"} 0.02
meridian_region_rtt_seconds{region="us"} 0
# HELP meridian_region_up Whether at least min_healthy endpoints of the region are up (1) or not (0).
# TYPE meridian_region_up gauge
meridian_region_up{region="eu"} 1
meridian_region_up{region="us"} 0
`
	if err := testutil.CollectAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

type errTimeoutForTest struct{}

func (errTimeoutForTest) Error() string { return "i/o timeout" }
func (errTimeoutForTest) Timeout() bool { return true }
func (errTimeoutForTest) Temporary() bool {
	return true
}

func TestMetricsRegisterTwice(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	regions := []config.Region{regionOf("eu", fastHealth("http"), 1, "http://10.0.0.1")}
	newChecker(t, regions, Options{Registerer: reg})
	_, err := New(regions, Options{Registerer: reg})
	if err == nil || !strings.HasPrefix(err.Error(), "health: registering metrics: ") {
		t.Fatalf("second New on one registry = %v, want a registering metrics error", err)
	}
	// The failed New left nothing behind: one set of series only.
	if n := testutil.CollectAndCount(reg, "meridian_health_checks_total"); n != 3 {
		t.Errorf("checks series = %d, want 3", n)
	}
}

func TestNoRegistererNoMetrics(t *testing.T) {
	t.Parallel()
	c := stepChecker(t, []config.Region{regionOf("eu", fastHealth("http"), 1, "http://10.0.0.1")}, Options{})
	ep := c.regions[0].endpoints[0]
	c.apply(ep, okResult(time.Millisecond)) // must not panic on nil counters
	if ep.counters[classOK] != nil {
		t.Error("counters bound without a registerer")
	}
}
