package proxy

import (
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/internal/promreg"
)

// Label values used when a request reached no region.
const regionNone = "none"

// durationBuckets spans a loopback hop to a slow upstream, in seconds.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// metrics are the proxy's collectors. Label children are resolved once per
// service and region (pair), and per status code on first use, so counting
// a request does not allocate.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	failovers *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_proxy_requests_total",
			Help: "Proxied requests by service, final region and status code sent (499: the client went away).",
		}, []string{"service", "region", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_proxy_request_duration_seconds",
			Help:    "Time from receiving a proxied request to its last response byte, by service and final region.",
			Buckets: durationBuckets,
		}, []string{"service", "region"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_proxy_retries_total",
			Help: "Retried upstream attempts by service, region of the failed attempt and retry_on reason.",
		}, []string{"service", "region", "reason"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_proxy_failovers_total",
			Help: "Retries that moved a request to another region.",
		}, []string{"service", "from_region", "to_region"}),
	}
	if reg != nil {
		m.requests = register(reg, m.requests, log)
		m.duration = register(reg, m.duration, log)
		m.retries = register(reg, m.retries, log)
		m.failovers = register(reg, m.failovers, log)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second Proxy on the same registry shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *slog.Logger) C {
	c, err := promreg.Register(reg, c)
	if err != nil {
		log.Error("registering proxy metrics", "err", err)
	}
	return c
}

// regionMetrics are the metric children of one service and region.
type regionMetrics struct {
	m               *metrics
	service, region string
	duration        prometheus.Observer
	codes           [500]atomic.Pointer[counter] // status 100..599
	stats           regionStats                  // what shift guards read (stats.go)
}

type counter struct{ prometheus.Counter }

// pairKey names a service and region.
type pairKey struct{ service, region string }

func (m *metrics) pair(service, region string) *regionMetrics {
	return &regionMetrics{
		m:        m,
		service:  service,
		region:   region,
		duration: m.duration.WithLabelValues(service, region),
	}
}

// count counts a request answered with code.
func (rm *regionMetrics) count(code int) {
	if code < 100 || code > 599 {
		rm.m.requests.WithLabelValues(rm.service, rm.region, strconv.Itoa(code)).Inc()
		return
	}
	slot := &rm.codes[code-100]
	c := slot.Load()
	if c == nil {
		c = &counter{rm.m.requests.WithLabelValues(rm.service, rm.region, strconv.Itoa(code))}
		slot.Store(c)
	}
	c.Inc()
}

func (rm *regionMetrics) retry(reason string) {
	rm.m.retries.WithLabelValues(rm.service, rm.region, reason).Inc()
}

func (m *metrics) failover(service, from, to string) {
	m.failovers.WithLabelValues(service, from, to).Inc()
}

// countNoRegion counts a request that no region served (no decision).
func (m *metrics) countNoRegion(service string, code int) {
	m.requests.WithLabelValues(service, regionNone, strconv.Itoa(code)).Inc()
}

// forgetService drops the series of a service that is gone.
func (m *metrics) forgetService(service string) {
	l := prometheus.Labels{"service": service}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.failovers.DeletePartialMatch(l)
}

// forgetPair drops the series of a region a service no longer uses.
func (m *metrics) forgetPair(service, region string) {
	l := prometheus.Labels{"service": service, "region": region}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.failovers.DeletePartialMatch(prometheus.Labels{"service": service, "from_region": region})
	m.failovers.DeletePartialMatch(prometheus.Labels{"service": service, "to_region": region})
}
