package node

import (
	"runtime"

	"github.com/meridian-edge/meridian/internal/version"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the series the node owns; components register their own on
// the same registry.
type metrics struct {
	failOpen *prometheus.CounterVec
	reloads  *prometheus.CounterVec
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		failOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_decisions_fail_open_total",
			Help: "Steering decisions that found no eligible region and failed open.",
		}, []string{"service"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_config_reloads_total",
			Help: "Configuration reloads by result (ok or error).",
		}, []string{"result"}),
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version.Version, runtime.Version()).Set(1)
	n.reg.MustRegister(
		m.failOpen, m.reloads, buildInfo,
		&dialCollector{n: n},
		&overrideCollector{n: n},
		&stateCollector{n: n},
		&fleetCollector{n: n},
		&fleetUpCollector{n: n},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// dialCollector reads every service's effective dials from the published
// view at scrape time.
type dialCollector struct{ n *Node }

var dialDesc = prometheus.NewDesc("meridian_service_dial",
	"Traffic dial (0..100) of a region in a service.", []string{"service", "region"}, nil)

func (c *dialCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dialDesc }

func (c *dialCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.n.View()
	if v == nil {
		return
	}
	for _, s := range v.Policy.Services {
		for p, ri := range s.Regions {
			ch <- prometheus.MustNewConstMetric(dialDesc, prometheus.GaugeValue,
				float64(s.Dials[p]), s.Name, v.Policy.Regions[ri].Name)
		}
	}
}
