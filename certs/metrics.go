package certs

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
)

var expiryDesc = prometheus.NewDesc("meridian_tls_certificate_expiry_timestamp_seconds",
	"Expiry (NotAfter) of a certificate the https listeners serve, as a Unix time, by its first name, source (file or acme) and key type (ecdsa, rsa or ed25519).",
	[]string{"name", "source", "key"}, nil)

// keyType names the type of a certificate's public key, as the metrics'
// key label does.
func keyType(leaf *x509.Certificate) string {
	switch leaf.PublicKeyAlgorithm {
	case x509.ECDSA:
		return "ecdsa"
	case x509.RSA:
		return "rsa"
	case x509.Ed25519:
		return "ed25519"
	}
	return "other"
}

// expiryCollector reports the expiry of every static certificate and of
// every ACME certificate in the cache, at scrape time. A name without a
// certificate yet has no series. A name served with an ECDSA and an RSA
// certificate has a series for each, since either may be the one to
// expire first.
type expiryCollector struct{ m *Manager }

var _ prometheus.Collector = (*expiryCollector)(nil)

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[3]string]bool{}
	emit := func(name, source string, leafCert *tls.Certificate) {
		if leafCert == nil || leafCert.Leaf == nil {
			return
		}
		k := [3]string{name, source, keyType(leafCert.Leaf)}
		if seen[k] {
			return // one series per label set; the first certificate is the one served
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue,
			float64(leafCert.Leaf.NotAfter.Unix()), k[:]...)
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
		"End of validity (nextUpdate) of the OCSP response stapled to a static certificate, as a Unix time, by the certificate's first name and key type; no series while none is stapled.",
		[]string{"name", "key"}, nil)
	ocspFetchesDesc = prometheus.NewDesc("meridian_tls_ocsp_fetches_total",
		"OCSP responses fetched for static certificates, by the certificate's first name, key type and result: stapled, failed (no answer from the responder) or rejected (an answer that did not parse, verify or pass the checks).",
		[]string{"name", "key", "result"}, nil)
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
	seen := map[[2]string]bool{}
	for _, sc := range c.m.static.list {
		if sc.ocsp == nil || sc.leaf.Leaf == nil {
			continue
		}
		k := [2]string{sc.name, keyType(sc.leaf.Leaf)}
		if seen[k] {
			continue // one series per name and key type, as for the expiry
		}
		seen[k] = true
		if r := sc.ocspStaple(); r != nil && !r.NextUpdate.IsZero() {
			ch <- prometheus.MustNewConstMetric(ocspExpiryDesc, prometheus.GaugeValue, float64(r.NextUpdate.Unix()), k[:]...)
		}
		for _, v := range []struct {
			result string
			n      uint64
		}{{"stapled", sc.ocsp.stapled.Load()}, {"failed", sc.ocsp.failed.Load()}, {"rejected", sc.ocsp.rejected.Load()}} {
			ch <- prometheus.MustNewConstMetric(ocspFetchesDesc, prometheus.CounterValue, float64(v.n), sc.name, k[1], v.result)
		}
	}
}
