package anycast

import "github.com/prometheus/client_golang/prometheus"

// collector reads session states and the announcement at scrape time.
type collector struct{ a *Anycast }

var (
	peerUpDesc = prometheus.NewDesc("meridian_bgp_peer_up",
		"1 while the BGP session to the peer is established, else 0.", []string{"peer"}, nil)
	announcedDesc = prometheus.NewDesc("meridian_bgp_announced",
		"1 while the prefix is announced to the BGP peers, 0 while it is withdrawn.", []string{"prefix"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- peerUpDesc
	ch <- announcedDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.a.sp.Peers() {
		ch <- prometheus.MustNewConstMetric(peerUpDesc, prometheus.GaugeValue, b2f(p.Up), p.Address)
	}
	on := c.a.Announced()
	for _, p := range c.a.sp.Prefixes() {
		ch <- prometheus.MustNewConstMetric(announcedDesc, prometheus.GaugeValue, b2f(on), p.String())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
