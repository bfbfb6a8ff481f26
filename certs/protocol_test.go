package certs

import (
	"crypto/ecdsa"
	"crypto/tls"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// dualServer serves an RSA and an ECDSA certificate for api.example.com,
// the RSA one listed first, through a Manager's TLS configuration.
func dualServer(t *testing.T) (m *Manager, addr string, ca *testCA) {
	t.Helper()
	ca = newTestCA(t, "test ca")
	dir := t.TempDir()
	rsaCert, rsaKeyFile, _ := ca.issue(t, dir, "rsa", rsaKey(t), "", "api.example.com")
	ecCert, ecKeyFile, _ := ca.issue(t, dir, "ec", ecKey(t), "", "api.example.com")
	m, err := New(config.TLS{Certificates: []config.Certificate{
		{CertFile: rsaCert, KeyFile: rsaKeyFile},
		{CertFile: ecCert, KeyFile: ecKeyFile},
	}}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m, serveHTTPS(t, m.TLSConfig()), ca
}

// dialWith completes a handshake with addr as a client configured by
// tweak, verifying the chain against ca.
func dialWith(addr string, ca *testCA, tweak func(*tls.Config)) (tls.ConnectionState, error) {
	cfg := &tls.Config{ServerName: "api.example.com", RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	if tweak != nil {
		tweak(cfg)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

// servedKey is the key type of the certificate the server sent.
func servedKey(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return "none"
	}
	return keyType(cs.PeerCertificates[0])
}

func TestTLSRefusesOldProtocolsAndSuites(t *testing.T) {
	t.Parallel()
	_, addr, ca := dualServer(t)
	for _, tc := range []struct {
		name  string
		tweak func(*tls.Config)
	}{
		{"tls1.1", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11 }},
		{"tls1.0", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }},
		{"cbc suites only", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
			}
		}},
		{"rsa key exchange only", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}
		}},
		{"3des only", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}
		}},
		{"p-384 only, tls1.3", func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP384} }},
		{"p-384 only, tls1.2", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CurvePreferences = []tls.CurveID{tls.CurveP384}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs, err := dialWith(addr, ca, tc.tweak)
			if err == nil {
				t.Fatalf("handshake succeeded: version %s, suite %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
			}
		})
	}
}

func TestTLSAllowedSuitesHandshake(t *testing.T) {
	t.Parallel()
	_, addr, ca := dualServer(t)
	// Mozilla's "intermediate" TLS 1.2 suites that Go implements, and the
	// certificate each needs.
	want := map[uint16]string{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       "ecdsa",
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         "rsa",
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       "ecdsa",
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         "rsa",
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ecdsa",
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   "rsa",
	}
	if len(want) != len(cipherSuites) {
		t.Fatalf("%d suites configured, the test knows %d", len(cipherSuites), len(want))
	}
	for _, suite := range cipherSuites {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			t.Parallel()
			for _, curve := range []tls.CurveID{tls.X25519, tls.CurveP256} {
				cs, err := dialWith(addr, ca, func(c *tls.Config) {
					c.MaxVersion = tls.VersionTLS12
					c.CipherSuites = []uint16{suite}
					c.CurvePreferences = []tls.CurveID{curve}
				})
				if err != nil {
					t.Fatalf("%s: handshake: %v", curve, err)
				}
				if cs.Version != tls.VersionTLS12 || cs.CipherSuite != suite || cs.CurveID != curve {
					t.Errorf("got %s %s %s, want TLS 1.2 %s %s", tls.VersionName(cs.Version),
						tls.CipherSuiteName(cs.CipherSuite), cs.CurveID, tls.CipherSuiteName(suite), curve)
				}
				if got := servedKey(cs); got != want[suite] {
					t.Errorf("%s: got a %s certificate, want %s", curve, got, want[suite])
				}
			}
		})
	}
	for _, tc := range []struct {
		name   string
		curves []tls.CurveID
		want   tls.CurveID
	}{
		{"tls1.3 default groups", nil, tls.X25519MLKEM768},
		{"tls1.3 x25519", []tls.CurveID{tls.X25519}, tls.X25519},
		{"tls1.3 p-256", []tls.CurveID{tls.CurveP256}, tls.CurveP256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs, err := dialWith(addr, ca, func(c *tls.Config) { c.CurvePreferences = tc.curves })
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if cs.Version != tls.VersionTLS13 || cs.CurveID != tc.want {
				t.Errorf("got %s with %s, want TLS 1.3 with %s", tls.VersionName(cs.Version), cs.CurveID, tc.want)
			}
			if got := servedKey(cs); got != "ecdsa" {
				t.Errorf("got a %s certificate, want ecdsa", got)
			}
		})
	}
}

func TestDualCertificatesPickByClient(t *testing.T) {
	t.Parallel()
	m, addr, ca := dualServer(t)

	t.Run("default client gets ecdsa", func(t *testing.T) {
		cs, err := dialWith(addr, ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := servedKey(cs); got != "ecdsa" {
			t.Errorf("got %s, want ecdsa", got)
		}
	})
	t.Run("tls1.2 client with rsa suites gets rsa", func(t *testing.T) {
		cs, err := dialWith(addr, ca, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := servedKey(cs); got != "rsa" {
			t.Errorf("got %s, want rsa", got)
		}
	})
	t.Run("without server name the default pair picks too", func(t *testing.T) {
		for _, tc := range []struct {
			suites []uint16
			want   string
		}{{nil, "ecdsa"}, {[]uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}, "rsa"}} {
			cs, err := dialWith(addr, ca, func(c *tls.Config) {
				c.ServerName = ""
				c.InsecureSkipVerify = true //nolint:gosec // no name to verify; the test looks at the key type
				if tc.suites != nil {
					c.MaxVersion = tls.VersionTLS12
					c.CipherSuites = tc.suites
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := servedKey(cs); got != tc.want {
				t.Errorf("suites %v: got %s, want %s", tc.suites, got, tc.want)
			}
		}
	})
	t.Run("tls1.3 hello with rsa signature schemes only gets rsa", func(t *testing.T) {
		for _, tc := range []struct {
			schemes []tls.SignatureScheme
			want    string
		}{
			{[]tls.SignatureScheme{tls.PSSWithSHA256, tls.PSSWithSHA384, tls.PKCS1WithSHA256}, "rsa"},
			{[]tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256}, "ecdsa"},
		} {
			c, err := m.getCertificate(&tls.ClientHelloInfo{
				ServerName:        "api.example.com",
				SupportedVersions: []uint16{tls.VersionTLS13},
				CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256},
				SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
				SignatureSchemes:  tc.schemes,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := "rsa"
			if _, ok := c.Leaf.PublicKey.(*ecdsa.PublicKey); ok {
				got = "ecdsa"
			}
			if got != tc.want {
				t.Errorf("schemes %v: got %s, want %s", tc.schemes, got, tc.want)
			}
		}
	})
}

// TestTLSWithOpenSSLClient has OpenSSL's client, limited to RSA
// signature algorithms over TLS 1.3, get the RSA certificate, and refused
// a CBC suite or TLS 1.1.
func TestTLSWithOpenSSLClient(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not found: install openssl (CI does)")
	}
	_, addr, _ := dualServer(t)
	run := func(args ...string) (string, error) {
		args = append([]string{"s_client", "-connect", addr, "-servername", "api.example.com"}, args...)
		cmd := exec.Command(openssl, args...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // in the output; "" = the handshake fails
	}{
		{"tls1.3 rsa signatures", []string{"-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256"}, "Server public key is 2048 bit"},
		{"tls1.3 ecdsa signatures", []string{"-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256"}, "Server public key is 256 bit"},
		{"tls1.2 cbc", []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384"}, ""},
		{"tls1.1", []string{"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.args...)
			if tc.want == "" {
				if err == nil && !strings.Contains(out, "Cipher is (NONE)") {
					t.Errorf("handshake succeeded:\n%s", out)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.want) {
				t.Errorf("err %v; want %q in:\n%s", err, tc.want, out)
			}
		})
	}
}
