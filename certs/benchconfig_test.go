package certs

import (
	"crypto/x509"
	"testing"

	"github.com/meridian-edge/meridian/config"
)

// TestBenchTLSConfig checks that configs/bench-proxy-tls.yaml loads, that
// its certificate pair is found from the config's folder and serves the
// names the harness uses, with h2 offered.
func TestBenchTLSConfig(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../configs/bench-proxy-tls.yaml")
	if err != nil {
		t.Fatalf("loading the bench config: %v", err)
	}
	if got := cfg.Listen.HTTPS; len(got) != 1 || got[0] != "127.0.0.1:8443" {
		t.Errorf("got listen.https %v, want [127.0.0.1:8443]", got)
	}
	m, err := New(cfg.TLS, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(m.static.list[0].leaf.Leaf) // self-signed
	addr := serveHTTPS(t, m.TLSConfig())
	for _, name := range []string{"bench.example.test", "localhost", "127.0.0.1"} {
		cs, err := handshake(addr, name, roots)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if cs.NegotiatedProtocol != "h2" {
			t.Errorf("%s: negotiated %q, want h2", name, cs.NegotiatedProtocol)
		}
	}
}
