package certs

import (
	"crypto/tls"

	"github.com/prometheus/client_golang/prometheus"
)

var expiryDesc = prometheus.NewDesc("meridian_tls_certificate_expiry_timestamp_seconds",
	"Expiry (NotAfter) of a certificate the https listeners serve, as a Unix time, by its first name and source (file or acme).",
	[]string{"name", "source"}, nil)

// expiryCollector reports the expiry of every static certificate and of
// every ACME certificate in the cache, at scrape time. A name without a
// certificate yet has no series.
type expiryCollector struct{ m *Manager }

var _ prometheus.Collector = (*expiryCollector)(nil)

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[2]string]bool{}
	emit := func(name, source string, leafCert *tls.Certificate) {
		if leafCert == nil || leafCert.Leaf == nil {
			return
		}
		k := [2]string{name, source}
		if seen[k] {
			return // one series per label set; the first certificate is the one served
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue,
			float64(leafCert.Leaf.NotAfter.Unix()), name, source)
	}
	for _, sc := range c.m.static.list {
		emit(sc.name, "file", sc.leaf)
	}
	c.m.mu.Lock()
	names, cache := append([]string(nil), c.m.names...), c.m.cache
	c.m.mu.Unlock()
	if cache == nil {
		return
	}
	for _, n := range names {
		for _, mc := range cache.AllMatchingCertificates(n) {
			emit(n, "acme", &mc.Certificate)
		}
	}
}

var (
	ocspExpiryDesc = prometheus.NewDesc("meridian_tls_ocsp_staple_expiry_timestamp_seconds",
		"End of validity (nextUpdate) of the OCSP response stapled to a static certificate, as a Unix time, by the certificate's first name; no series while none is stapled.",
		[]string{"name"}, nil)
	ocspFetchesDesc = prometheus.NewDesc("meridian_tls_ocsp_fetches_total",
		"OCSP responses fetched for static certificates, by the certificate's first name and result: stapled, failed (no answer from the responder) or rejected (an answer that did not parse, verify or pass the checks).",
		[]string{"name", "result"}, nil)
)

// ocspCollector reports the OCSP staples of the static certificates at
// scrape time.
type ocspCollector struct{ m *Manager }

var _ prometheus.Collector = (*ocspCollector)(nil)

func (c *ocspCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ocspExpiryDesc
	ch <- ocspFetchesDesc
}

func (c *ocspCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, sc := range c.m.static.list {
		if sc.ocsp == nil || seen[sc.name] {
			continue // one series per name, as for the expiry
		}
		seen[sc.name] = true
		if r := sc.ocspStaple(); r != nil && !r.NextUpdate.IsZero() {
			ch <- prometheus.MustNewConstMetric(ocspExpiryDesc, prometheus.GaugeValue, float64(r.NextUpdate.Unix()), sc.name)
		}
		for _, v := range []struct {
			result string
			n      uint64
		}{{"stapled", sc.ocsp.stapled.Load()}, {"failed", sc.ocsp.failed.Load()}, {"rejected", sc.ocsp.rejected.Load()}} {
			ch <- prometheus.MustNewConstMetric(ocspFetchesDesc, prometheus.CounterValue, float64(v.n), sc.name, v.result)
		}
	}
}
