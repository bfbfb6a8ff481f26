package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/etcdtest"
)

// selfSigned writes a certificate and key for name into dir.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// TestFleetSessionResumption: two nodes of one fleet share their TLS
// session ticket keys through etcd, so a client's session from one node
// resumes on the other (an anycast client moves between nodes).
func TestFleetSessionResumption(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcd")
	}
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir, "web.fleet.test")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	t.Cleanup(up.Close)
	var nodes []*Node
	for _, name := range []string{"tls-a", "tls-b"} {
		path := filepath.Join(dir, name+".yaml")
		text := fmt.Sprintf(`node: {name: %s, addresses: [127.0.0.1], drain: 0s}
listen: {https: ["127.0.0.1:0"], admin: "127.0.0.1:0"}
tls: {certificates: [{cert_file: %s, key_file: %s}]}
state: {backend: etcd, path: %s-state.json, etcd: {endpoints: ["%s"], prefix: /tls-test/, dial_timeout: 2s}}
fleet: {node_ttl: 2s}
regions:
  - name: r
    endpoints: [{address: 127.0.0.1, url: "%s"}]
    health: {type: none}
zones: [{name: fleet.test, nameservers: [ns1.fleet.test]}]
services: [{name: web, hostnames: [web.fleet.test], mode: proxy, policy: failover, regions: [r]}]
`, name, certFile, keyFile, name, etcd.Endpoint, up.URL)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ConfigPath: path})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes = append(nodes, n)
	}
	cache := tls.NewLRUClientSessionCache(8)
	get := func(n *Node) (resumed bool) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "web.fleet.test", ClientSessionCache: cache, MinVersion: tls.VersionTLS13}}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest(http.MethodGet, "https://"+n.Addr("https/0").String()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "web.fleet.test"
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // the ticket comes after the handshake
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp.TLS.DidResume
	}
	if get(nodes[0]) {
		t.Fatal("the first connection resumed a session")
	}
	// The ticket from node a is good at node b.
	if !get(nodes[1]) {
		t.Fatal("a session from node tls-a did not resume at node tls-b")
	}
}
