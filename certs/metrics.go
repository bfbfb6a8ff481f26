package certs

import (
	"crypto/tls"
	"path/filepath"

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
	for i, cert := range c.m.static.list {
		emit(staticName(cert, c.m.static.files[i]), "file", cert)
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

// staticName labels a static certificate: its first DNS name, else its
// subject's common name, else its file's base name.
func staticName(c *tls.Certificate, file string) string {
	switch {
	case len(c.Leaf.DNSNames) > 0:
		return c.Leaf.DNSNames[0]
	case c.Leaf.Subject.CommonName != "":
		return c.Leaf.Subject.CommonName
	}
	return filepath.Base(file)
}
