package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meridian-edge/meridian/config"
)

// issuanceTimeout bounds how long a test waits for an ACME certificate.
const issuanceTimeout = 45 * time.Second

// waitForCert polls TLS handshakes with serverName against addr until one
// verifies against roots, and returns its state.
func waitForCert(t *testing.T, addr, serverName string, roots *x509.CertPool) tls.ConnectionState {
	t.Helper()
	deadline := time.Now().Add(issuanceTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := handshake(addr, serverName, roots)
		if err == nil {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verifiable certificate for %q within %s: %v", serverName, issuanceTimeout, err)
		}
		<-tick.C
	}
}

// checkIssued asserts that st carries a verified chain up to pebble's
// issuing root whose leaf names want.
func checkIssued(t *testing.T, st tls.ConnectionState, want string) {
	t.Helper()
	if len(st.VerifiedChains) == 0 {
		t.Fatal("no verified chain")
	}
	leaf := st.PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, want) {
		t.Errorf("leaf names %v, want %q among them", leaf.DNSNames, want)
	}
	chain := st.VerifiedChains[0]
	if root := chain[len(chain)-1]; !strings.Contains(root.Subject.CommonName, "Pebble Root CA") {
		t.Errorf("chain ends at %q, want pebble's root", root.Subject.CommonName)
	}
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("negotiated protocol %q, want h2", st.NegotiatedProtocol)
	}
}

func TestACMEDNS01EndToEnd(t *testing.T) {
	t.Parallel()
	dnsSrv, dnsAddr := startMeridianDNS(t)
	txt := newCountingTXT(dnsSrv)
	peb := startPebble(t, dnsAddr, freePort(t))
	storage := t.TempDir()
	staticCert, staticKey, staticLeaf := writeSelfSigned(t, t.TempDir(), "static", "static.example.com")
	acmeCfg := config.TLS{
		Certificates: []config.Certificate{{CertFile: staticCert, KeyFile: staticKey}},
		ACME: &config.ACME{
			Email:     "ops@example.com",
			CA:        peb.directory,
			CARoot:    peb.caRoot,
			Challenge: "dns-01",
			Storage:   storage,
		},
	}
	opts := Options{
		Logger:      testLogger(t),
		TXT:         txt,
		Names:       []string{"api.example.com", "*.edge.example.com", "static.example.com"},
		DNSResolver: dnsAddr,
	}
	m, err := New(acmeCfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer m.Stop()
	addr := serveHTTPS(t, m.TLSConfig())

	checkIssued(t, waitForCert(t, addr, "api.example.com", peb.issuing), "api.example.com")
	checkIssued(t, waitForCert(t, addr, "eu.edge.example.com", peb.issuing), "*.edge.example.com")

	// The static certificate keeps its name and stays the default.
	for _, sni := range []string{"static.example.com", "unknown.example.org"} {
		st, err := handshake(addr, sni, nil)
		if err != nil {
			t.Fatalf("handshake for %s: %v", sni, err)
		}
		if !bytes.Equal(st.PeerCertificates[0].Raw, staticLeaf.Raw) {
			t.Errorf("%s: served %v, want the static certificate", sni, st.PeerCertificates[0].DNSNames)
		}
	}

	names, presented, removed, live := txt.state()
	wantNames := []string{"_acme-challenge.api.example.com", "_acme-challenge.edge.example.com"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("dns-01 records presented at %q, want %q", names, wantNames)
	}
	if removed != presented || live != 0 {
		t.Errorf("dns-01 records: presented %d, removed %d, still published %d; want all removed", presented, removed, live)
	}
	for _, n := range wantNames {
		if got := queryTXT(t, dnsAddr, n); len(got) != 0 {
			t.Errorf("meridian's DNS still serves TXT %q at %s after issuance", got, n)
		}
	}
	for _, name := range []string{"api.example.com", "wildcard_.edge.example.com"} {
		crt, _ := filepath.Glob(filepath.Join(storage, "certificates", "*", name, name+".crt"))
		if len(crt) != 1 {
			t.Errorf("stored certificate for %s: found %v, want one file", name, crt)
		}
	}
	m.Stop()

	// A restart finds the certificates in storage: no new challenge.
	m2, err := New(acmeCfg, opts)
	if err != nil {
		t.Fatalf("New after restart: %v", err)
	}
	if err := m2.Start(context.Background()); err != nil {
		t.Fatalf("Start after restart: %v", err)
	}
	defer m2.Stop()
	addr2 := serveHTTPS(t, m2.TLSConfig())
	checkIssued(t, waitForCert(t, addr2, "api.example.com", peb.issuing), "api.example.com")
	checkIssued(t, waitForCert(t, addr2, "x.edge.example.com", peb.issuing), "*.edge.example.com")
	if _, again, _, _ := txt.state(); again != presented {
		t.Errorf("restart presented %d new dns-01 records, want none", again-presented)
	}
}

// queryTXT asks addr for the TXT records at name.
func queryTXT(t *testing.T, addr, name string) []string {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	in, err := dns.Exchange(q, addr)
	if err != nil {
		t.Fatalf("querying TXT %s: %v", name, err)
	}
	var out []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

func TestACMEHTTP01EndToEnd(t *testing.T) {
	t.Parallel()
	_, dnsAddr := startMeridianDNS(t) // www.example.com A 127.0.0.1
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpPort := httpLn.Addr().(*net.TCPAddr).Port
	peb := startPebble(t, dnsAddr, httpPort)

	reg := prometheus.NewRegistry()
	m, err := New(config.TLS{ACME: &config.ACME{
		Email:     "ops@example.com",
		CA:        peb.directory,
		CARoot:    peb.caRoot,
		Challenge: "http-01",
		Storage:   t.TempDir(),
	}}, Options{Logger: testLogger(t), Names: []string{"www.example.com"}, HTTPPort: httpPort, Registerer: reg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	var answered, passed atomic.Int64
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		passed.Add(1)
		http.NotFound(w, nil)
	})
	challenge := m.HTTPChallengeHandler(next)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			before := passed.Load()
			challenge.ServeHTTP(w, r)
			if passed.Load() == before && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				answered.Add(1)
			}
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpLn) }()
	defer func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("http listener: %v", err)
		}
	}()

	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer m.Stop()
	addr := serveHTTPS(t, m.TLSConfig())
	st := waitForCert(t, addr, "www.example.com", peb.issuing)
	checkIssued(t, st, "www.example.com")
	want := expiryHead + fmt.Sprintf("meridian_tls_certificate_expiry_timestamp_seconds{key=\"ecdsa\",name=\"www.example.com\",source=\"acme\"} %d\n",
		st.PeerCertificates[0].NotAfter.Unix())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Errorf("expiry metric: %v", err)
	}

	if answered.Load() == 0 {
		t.Error("no http-01 challenge request was answered by HTTPChallengeHandler")
	}
	// Other requests still reach next.
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + httpLn.Addr().String() + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || passed.Load() == 0 {
		t.Errorf("plain request: status %d, next called %d times; want 404 from next", resp.StatusCode, passed.Load())
	}
}
