package health

import "github.com/prometheus/client_golang/prometheus"

// metrics are the checker's series. Probe counts are counters; the state
// (endpoint and region up, region RTT) is read from the current snapshot
// at scrape time by a Collector, so it never disagrees with Snapshot.
type metrics struct {
	checks *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, c *Checker) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_health_checks_total",
			Help: "Health probes run, by region, endpoint and result (ok, fail, timeout).",
		}, []string{"region", "endpoint", "result"}),
	}
	if err := reg.Register(m.checks); err != nil {
		return nil, err
	}
	if err := reg.Register(newCollector(c)); err != nil {
		reg.Unregister(m.checks)
		return nil, err
	}
	return m, nil
}

// bind resolves ep's counters once, so that a probe increments without a
// label lookup. Endpoints without probes have none.
func (m *metrics) bind(ep *endpoint) {
	if ep.prober == nil {
		return
	}
	for i, name := range classNames {
		ep.counters[i] = m.checks.WithLabelValues(ep.t.region, ep.t.name, name)
	}
}

// forget drops the series of a removed endpoint.
func (m *metrics) forget(ep *endpoint) {
	m.checks.DeletePartialMatch(prometheus.Labels{"region": ep.t.region, "endpoint": ep.t.name})
}

// The state series, read from the snapshot at scrape time.
var (
	endpointUpDesc = prometheus.NewDesc("meridian_endpoint_up",
		"Whether the endpoint takes traffic: probes pass and it is not ejected (1) or not (0).",
		[]string{"region", "endpoint"}, nil)
	regionUpDesc = prometheus.NewDesc("meridian_region_up",
		"Whether at least min_healthy endpoints of the region are up (1) or not (0).",
		[]string{"region"}, nil)
	regionRTTDesc = prometheus.NewDesc("meridian_region_rtt_seconds",
		"Mean probe round-trip time of the region's min_healthy fastest healthy endpoints; 0 when unknown.",
		[]string{"region"}, nil)
)

// collector exports the current snapshot's state.
type collector struct{ c *Checker }

var _ prometheus.Collector = (*collector)(nil)

func newCollector(c *Checker) *collector { return &collector{c: c} }

func (col *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointUpDesc
	ch <- regionUpDesc
	ch <- regionRTTDesc
}

func (col *collector) Collect(ch chan<- prometheus.Metric) {
	s := col.c.Snapshot()
	if s == nil {
		return
	}
	for _, r := range s.Regions {
		ch <- prometheus.MustNewConstMetric(regionUpDesc, prometheus.GaugeValue, boolValue(r.Up), r.Name)
		ch <- prometheus.MustNewConstMetric(regionRTTDesc, prometheus.GaugeValue, r.RTT.Seconds(), r.Name)
		seen := make(map[string]bool, len(r.Endpoints))
		for _, e := range r.Endpoints {
			if seen[e.Name] {
				continue // one series per label set, even for a repeated endpoint
			}
			seen[e.Name] = true
			ch <- prometheus.MustNewConstMetric(endpointUpDesc, prometheus.GaugeValue,
				boolValue(e.Up && !e.Ejected), r.Name, e.Name)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
