package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
)

// liveNode is one node shared by the package's tests, started on loopback
// with DNS, http, https (a static certificate) and admin listeners, and
// driven through the events its metrics describe: DNS answers, proxied
// requests, a retry that fails over to another region, a fail-open
// decision, an override and a reload.
type liveNode struct {
	n       *node.Node
	metrics string          // the /metrics page after the events
	names   map[string]bool // metric family names on it
}

var (
	liveOnce sync.Once
	live     *liveNode
	liveErr  error
)

const liveConfig = `
node: {name: deploy-test, addresses: [127.0.0.1], drain: 10ms, shutdown_timeout: 2s}
listen:
  dns: ["127.0.0.1:0"]
  http: ["127.0.0.1:0"]
  https: ["127.0.0.1:0"]
  admin: "127.0.0.1:0"
state: {path: {{DIR}}/state.json}
tls:
  certificates: [{cert_file: {{DIR}}/cert.pem, key_file: {{DIR}}/key.pem}]
regions:
  - name: us-east
    endpoints: [{address: 192.0.2.1, url: "{{us-east}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 1, fall: 1}
  - name: eu-west
    endpoints: [{address: 192.0.2.2, url: "{{eu-west}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 1, fall: 1}
  - name: ap-south
    endpoints: [{address: 192.0.2.3, url: "{{ap-south}}"}]
    health: {interval: 100ms, timeout: 2s, rise: 1, fall: 1}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
    records: ["ns1 3600 A 127.0.0.1"]
services:
  - {name: api, hostnames: [api.example.test], policy: failover, regions: [us-east, eu-west]}
  - {name: lonely, hostnames: [lonely.example.test], policy: failover, regions: [ap-south]}
  - name: web
    hostnames: [web.example.test]
    mode: proxy
    policy: failover
    regions: [us-east, eu-west]
    proxy: {retry_budget: 100%}
`

// liveMetrics returns the shared node's metrics, starting it on first use.
func liveMetrics(t *testing.T) *liveNode {
	t.Helper()
	liveOnce.Do(func() { live, liveErr = startLive() })
	if liveErr != nil {
		t.Fatal(liveErr)
	}
	return live
}

// TestMain stops the shared node after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if live != nil {
		_ = live.n.Close()
	}
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

var cleanups []func()

func startLive() (*liveNode, error) {
	dir, err := os.MkdirTemp("", "meridian-deploy")
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	if err := writeCert(dir); err != nil {
		return nil, err
	}
	// us-east passes its health checks but answers requests with 503, so
	// a proxied request is retried in eu-west; ap-south fails its checks,
	// so "lonely" has no healthy region and fails open.
	var usHits atomic.Int64
	handlers := map[string]http.HandlerFunc{
		"us-east": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health/ready" {
				return
			}
			usHits.Add(1)
			http.Error(w, "busy", http.StatusServiceUnavailable)
		},
		"eu-west":  func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "eu-west\n") },
		"ap-south": func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) },
	}
	text := strings.ReplaceAll(liveConfig, "{{DIR}}", dir)
	for name, h := range handlers {
		srv := httptest.NewServer(h)
		cleanups = append(cleanups, srv.Close)
		text = strings.ReplaceAll(text, "{{"+name+"}}", srv.URL)
	}
	path := filepath.Join(dir, "meridian.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	n, err := node.New(cfg, node.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ConfigPath: path})
	if err != nil {
		return nil, err
	}
	if err := n.Start(context.Background()); err != nil {
		return nil, err
	}
	l := &liveNode{n: n}
	if err := l.drive(); err != nil {
		_ = n.Close()
		return nil, err
	}
	return l, nil
}

// drive makes the node count what the dashboard and the alerts show, then
// reads /metrics.
func (l *liveNode) drive() error {
	if err := waitFor(10*time.Second, "node ready", l.n.Ready); err != nil {
		return err
	}
	dnsAddr := l.n.Addr("dns/0").String()
	ask := func(name string) error {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		_, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, dnsAddr)
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string) error {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Host = "web.example.test"
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if _, err := l.n.SetOverride("eu-west", "up", node.Actor{Token: "test", Reason: "metrics"}); err != nil {
		return err
	}
	if err := l.n.Reload(node.Actor{Token: "test", Reason: "metrics"}); err != nil {
		return err
	}
	want := []string{"meridian_dns_answers_total", "meridian_proxy_failovers_total", "meridian_proxy_retries_total",
		"meridian_decisions_fail_open_total", "meridian_proxy_request_duration_seconds", "meridian_dns_request_duration_seconds"}
	admin := "http://" + l.n.Addr("admin").String() + "/metrics"
	proxied := "http://" + l.n.Addr("http/0").String() + "/"
	var last error
	err := waitFor(20*time.Second, "metrics of every event", func() bool {
		for _, q := range []string{"api.example.test.", "lonely.example.test.", "nope.example.test."} {
			if last = ask(q); last != nil {
				return false
			}
		}
		if last = get(proxied); last != nil {
			return false
		}
		if last = l.scrape(admin); last != nil {
			return false
		}
		for _, w := range want {
			if !l.names[w] {
				last = fmt.Errorf("%s not exported yet", w)
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("%w: %v", err, last)
	}
	return nil
}

// scrape reads the admin listener's /metrics.
func (l *liveNode) scrape(url string) error {
	resp, err := http.Get(url) //nolint:gosec // G107: the test node's own address
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	l.metrics = string(b)
	l.names = map[string]bool{}
	for line := range strings.Lines(l.metrics) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			l.names[f[2]] = true
		}
	}
	return nil
}

func waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// writeCert writes a self-signed certificate for web.example.test.
func writeCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "web.example.test"},
		DNSNames:     []string{"web.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// tool returns the path of an external checker. Missing, it skips the
// test, except in CI (CI set), where .ci/run installs it and a skip would
// hide a check.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (.ci/run installs it): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}
