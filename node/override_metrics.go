package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/policy"
)

// overrideStates are the label values of meridian_region_override, one
// series each per region: the region's current state is 1, the others 0.
var overrideStates = [...]policy.Override{policy.Auto, policy.ForceUp, policy.ForceDown}

var overrideDesc = prometheus.NewDesc("meridian_region_override",
	"Operator override of a region's health: 1 for the state in force (auto, up or down), 0 for the others.",
	[]string{"region", "state"}, nil)

// overrideCollector reads every region's override from the published view
// at scrape time, so a forced region shows even when its health agrees.
type overrideCollector struct{ n *Node }

var _ prometheus.Collector = (*overrideCollector)(nil)

func (c *overrideCollector) Describe(ch chan<- *prometheus.Desc) { ch <- overrideDesc }

func (c *overrideCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.n.View()
	if v == nil {
		return
	}
	for _, r := range v.Policy.Regions {
		for _, s := range overrideStates {
			val := 0.0
			if r.Override == s {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(overrideDesc, prometheus.GaugeValue, val, r.Name, s.String())
		}
	}
}
