package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/config"
)

func TestStaticCertificatesBySNI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, leafA := writeSelfSigned(t, dir, "a", "a.example.com")
	certB, keyB, leafB := writeSelfSigned(t, dir, "b", "b.example.com", "*.wild.example.com")

	m, err := New(config.TLS{Certificates: []config.Certificate{
		{CertFile: certA, KeyFile: keyA},
		{CertFile: certB, KeyFile: keyB},
	}}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start without acme: %v", err)
	}
	defer m.Stop()
	addr := serveHTTPS(t, m.TLSConfig())

	tests := []struct {
		name       string
		serverName string
		want       *x509.Certificate
	}{
		{"exact first", "a.example.com", leafA},
		{"exact second", "b.example.com", leafB},
		{"case and final dot ignored", "B.Example.COM.", leafB},
		{"wildcard", "eu.wild.example.com", leafB},
		{"wildcard covers one label only", "x.eu.wild.example.com", leafA},
		{"unknown name gets the first", "other.example.org", leafA},
		{"no SNI gets the first", "", leafA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := handshake(addr, tc.serverName, nil)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			got := st.PeerCertificates[0]
			if !bytes.Equal(got.Raw, tc.want.Raw) {
				t.Errorf("served certificate for %v, want the one for %v", got.DNSNames, tc.want.DNSNames)
			}
			if st.NegotiatedProtocol != "h2" {
				t.Errorf("negotiated protocol %q, want h2", st.NegotiatedProtocol)
			}
		})
	}

	t.Run("chain verifies for its name", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(leafB)
		if _, err := handshake(addr, "eu.wild.example.com", roots); err != nil {
			t.Errorf("verified handshake: %v", err)
		}
	})
}

func TestTLSConfigProtocols(t *testing.T) {
	t.Parallel()
	m, err := New(config.TLS{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.TLSConfig()
	if got, want := strings.Join(cfg.NextProtos, ","), "h2,http/1.1"; got != want {
		t.Errorf("NextProtos %q, want %q", got, want)
	}
	if cfg.GetCertificate == nil {
		t.Fatal("GetCertificate not set")
	}
	if m.TLSConfig() == cfg {
		t.Error("TLSConfig returned the same value twice; callers may change it")
	}
}

func TestNoCertificateFailsHandshake(t *testing.T) {
	t.Parallel()
	m, err := New(config.TLS{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveHTTPS(t, m.TLSConfig())
	if _, err := handshake(addr, "api.example.com", nil); err == nil {
		t.Fatal("handshake succeeded without any certificate")
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, _ := writeSelfSigned(t, dir, "a", "a.example.com")
	_, keyB, _ := writeSelfSigned(t, dir, "b", "b.example.com")
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not a certificate\n"))
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		cfg  config.TLS
		opts Options
		want []string // substrings of the error
	}{
		{
			name: "missing cert file",
			cfg:  config.TLS{Certificates: []config.Certificate{{CertFile: missing, KeyFile: keyA}}},
			want: []string{`loading certificate "` + missing + `"`, "reading cert_file", "no such file or directory"},
		},
		{
			name: "missing key file",
			cfg:  config.TLS{Certificates: []config.Certificate{{CertFile: certA, KeyFile: missing}}},
			want: []string{`(key "` + missing + `")`, "reading key_file: open " + missing},
		},
		{
			name: "key of another certificate",
			cfg:  config.TLS{Certificates: []config.Certificate{{CertFile: certA, KeyFile: keyB}}},
			want: []string{`loading certificate "` + certA + `" (key "` + keyB + `")`, "private key does not match public key"},
		},
		{
			name: "not PEM",
			cfg:  config.TLS{Certificates: []config.Certificate{{CertFile: garbage, KeyFile: keyA}}},
			want: []string{garbage, "failed to find any PEM data in certificate input"},
		},
		{
			name: "key file unset",
			cfg:  config.TLS{Certificates: []config.Certificate{{CertFile: certA}}},
			want: []string{"cert_file and key_file are both required"},
		},
		{
			name: "second pair broken",
			cfg: config.TLS{Certificates: []config.Certificate{
				{CertFile: certA, KeyFile: keyA},
				{CertFile: certA, KeyFile: keyB},
			}},
			want: []string{keyB, "private key does not match public key"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.cfg, tc.opts)
			if err == nil {
				t.Fatalf("New succeeded (%v), want an error", m)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStaticCoversNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certB, keyB, _ := writeSelfSigned(t, dir, "b", "b.example.com", "*.wild.example.com")
	m, err := New(config.TLS{
		Certificates: []config.Certificate{{CertFile: certB, KeyFile: keyB}},
		ACME:         &config.ACME{Challenge: "dns-01", Storage: t.TempDir()},
	}, Options{
		Logger: testLogger(t),
		TXT:    newFakeTXT(),
		Names: []string{
			"A.example.com.", "a.example.com", // same name twice
			"b.example.com",         // static
			"eu.wild.example.com",   // static wildcard
			"*.wild.example.com",    // the static wildcard itself
			"*.other.example.com",   // wildcard, not covered
			"x.eu.wild.example.com", // deeper than the wildcard
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.names, " ")
	want := "a.example.com *.other.example.com x.eu.wild.example.com"
	if got != want {
		t.Errorf("acme names %q, want %q", got, want)
	}
}
