package certs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/meridian-edge/meridian/config"
)

const expiryHead = `# HELP meridian_tls_certificate_expiry_timestamp_seconds Expiry (NotAfter) of a certificate the https listeners serve, as a Unix time, by its first name, source (file or acme) and key type (ecdsa, rsa or ed25519).
# TYPE meridian_tls_certificate_expiry_timestamp_seconds gauge
`

func TestStaticCertificateExpiryMetric(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, leafA := writeSelfSigned(t, dir, "a", "a.example.com")
	certB, keyB, leafB := writeSelfSigned(t, dir, "b", "b.example.com", "*.wild.example.com")
	// A second ECDSA certificate for a.example.com, never served: one
	// series, the first one's.
	certC, keyC, _ := writeSelfSigned(t, dir, "c", "a.example.com")
	// An RSA certificate for b.example.com, served to clients without
	// ECDSA: a series of its own.
	certD, keyD, leafD := newTestCA(t, "test ca").issue(t, dir, "d", rsaKey(t), "", "b.example.com")
	reg := prometheus.NewRegistry()
	m, err := New(config.TLS{Certificates: []config.Certificate{
		{CertFile: certA, KeyFile: keyA},
		{CertFile: certB, KeyFile: keyB},
		{CertFile: certC, KeyFile: keyC},
		{CertFile: certD, KeyFile: keyD},
	}}, Options{Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer m.Stop()
	want := expiryHead + fmt.Sprintf(
		"meridian_tls_certificate_expiry_timestamp_seconds{key=\"ecdsa\",name=\"a.example.com\",source=\"file\"} %d\n"+
			"meridian_tls_certificate_expiry_timestamp_seconds{key=\"ecdsa\",name=\"b.example.com\",source=\"file\"} %d\n"+
			"meridian_tls_certificate_expiry_timestamp_seconds{key=\"rsa\",name=\"b.example.com\",source=\"file\"} %d\n",
		leafA.NotAfter.Unix(), leafB.NotAfter.Unix(), leafD.NotAfter.Unix())

	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
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

	// A second manager on the same registry is refused with a clear error.
	if _, err := New(config.TLS{}, Options{Logger: testLogger(t), Registerer: reg}); err == nil ||
		!strings.Contains(err.Error(), "registering certificate metrics") {
		t.Errorf("second manager on one registry: got %v, want a registration error", err)
	}
}
