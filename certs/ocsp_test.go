package certs

import (
	"bytes"
	"crypto"
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
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"golang.org/x/crypto/ocsp"

	"github.com/meridian-edge/meridian/config"
)

// fastOCSP are refresh pauses short enough for tests.
var fastOCSP = ocspTiming{minRefresh: 50 * time.Millisecond, retry: 100 * time.Millisecond, maxRetry: 400 * time.Millisecond, margin: time.Second}

// ocspResponder is an OCSP responder on 127.0.0.1 for the certificates of
// a testCA. What it answers depends on its mode.
type ocspResponder struct {
	t        *testing.T
	ca       *testCA
	srv      *httptest.Server
	requests atomic.Int64

	mu       sync.Mutex
	mode     string        // see respond
	thisAgo  time.Duration // thisUpdate = now - thisAgo
	validFor time.Duration // nextUpdate = thisUpdate + validFor
	after    string        // when set, the mode after the next request
}

func newOCSPResponder(t *testing.T, ca *testCA, mode string) *ocspResponder {
	t.Helper()
	r := &ocspResponder{t: t, ca: ca, mode: mode, thisAgo: time.Minute, validFor: time.Hour}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *ocspResponder) set(mode string, thisAgo, validFor time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode, r.thisAgo, r.validFor = mode, thisAgo, validFor
}

func (r *ocspResponder) serve(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	oreq, err := ocsp.ParseRequest(body)
	if err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/ocsp-request" {
		http.Error(w, fmt.Sprintf("bad request: %v", err), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	mode, thisAgo, validFor := r.mode, r.thisAgo, r.validFor
	if r.after != "" {
		r.mode, r.after = r.after, ""
	}
	r.mu.Unlock()
	raw, status := r.respond(mode, oreq, thisAgo, validFor)
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// respond builds the answer of a mode: good, revoked, unknown,
// other-serial, wrong-signer, expired, future, beyond-cert, delegated,
// undelegated, garbage or error.
func (r *ocspResponder) respond(mode string, req *ocsp.Request, thisAgo, validFor time.Duration) ([]byte, int) {
	t := r.t
	now := time.Now().Truncate(time.Second)
	tmpl := ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now.Add(-thisAgo),
		NextUpdate:   now.Add(-thisAgo).Add(validFor),
	}
	issuer, signer, key := r.ca.cert, r.ca.cert, r.ca.key
	switch mode {
	case "good":
	case "revoked":
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-time.Minute), ocsp.KeyCompromise
	case "unknown":
		tmpl.Status = ocsp.Unknown
	case "other-serial":
		tmpl.SerialNumber = new(big.Int).Add(req.SerialNumber, big.NewInt(1))
	case "wrong-signer":
		other := newTestCA(t, "test ca")
		issuer, signer, key = other.cert, other.cert, other.key
	case "expired":
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-2*time.Hour), now.Add(-time.Hour)
	case "future":
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(time.Hour), now.Add(2*time.Hour)
	case "beyond-cert":
		tmpl.NextUpdate = now.Add(72 * time.Hour)
	case "delegated", "undelegated":
		signer, key = r.delegate(t, mode == "delegated")
		tmpl.Certificate = signer
	case "garbage":
		return []byte("not an OCSP response"), http.StatusOK
	case "error":
		return []byte("responder failure"), http.StatusInternalServerError
	default:
		t.Errorf("unknown responder mode %q", mode)
		return nil, http.StatusInternalServerError
	}
	raw, err := ocsp.CreateResponse(issuer, signer, tmpl, key)
	if err != nil {
		t.Errorf("creating the OCSP response: %v", err)
		return nil, http.StatusInternalServerError
	}
	return raw, http.StatusOK
}

// delegate issues a responder certificate from the CA, with the OCSP
// signing extended key usage or without it.
func (r *ocspResponder) delegate(t *testing.T, ocspSigning bool) (*x509.Certificate, crypto.Signer) {
	key := ecKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(t),
		Subject:      pkix.Name{CommonName: "ocsp responder"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if ocspSigning {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.ca.cert, key.Public(), r.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// ocspFixture is a Manager serving one static certificate whose OCSP
// responder is r.
type ocspFixture struct {
	m    *Manager
	sc   *staticCert
	leaf *x509.Certificate
	ca   *testCA
	r    *ocspResponder
	addr string
	reg  *prometheus.Registry
	log  *syncBuffer
}

func newOCSPFixture(t *testing.T, mode string, setup func(*ocspResponder)) *ocspFixture {
	t.Helper()
	ca := newTestCA(t, "test ca")
	r := newOCSPResponder(t, ca, mode)
	if setup != nil {
		setup(r)
	}
	certFile, keyFile, leaf := ca.issue(t, t.TempDir(), "api", ecKey(t), r.srv.URL+"/ocsp", "api.example.com")
	f := &ocspFixture{leaf: leaf, ca: ca, r: r, reg: prometheus.NewRegistry(), log: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", f.log.String())
		}
	})
	m, err := New(config.TLS{Certificates: []config.Certificate{{CertFile: certFile, KeyFile: keyFile}}},
		Options{Logger: slogTo(f.log), Registerer: f.reg, ocspTiming: &fastOCSP})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	f.m, f.sc = m, m.static.list[0]
	f.addr = serveHTTPS(t, m.TLSConfig())
	return f
}

// staple completes a verified handshake and returns the stapled response
// (nil when none); a staple that does not parse for the leaf fails the
// test.
func (f *ocspFixture) staple(t *testing.T) []byte {
	t.Helper()
	cs, err := handshake(f.addr, "api.example.com", f.ca.pool)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if len(cs.OCSPResponse) == 0 {
		return nil
	}
	resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, f.leaf, f.ca.cert)
	if err != nil {
		t.Fatalf("the client got a staple that does not verify: %v", err)
	}
	if resp.Status != ocsp.Good || !time.Now().Before(resp.NextUpdate) {
		t.Fatalf("the client got a staple with status %d, next update %s", resp.Status, resp.NextUpdate)
	}
	return cs.OCSPResponse
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOCSPStapleServedRefreshedAndKept(t *testing.T) {
	t.Parallel()
	// Responses valid for 20 s, 8 s old: the half-life comes 2 s on.
	f := newOCSPFixture(t, "good", func(r *ocspResponder) { r.set("good", 8*time.Second, 20*time.Second) })

	// Fetched while loading, before Start.
	first := f.staple(t)
	if first == nil {
		t.Fatal("no staple after loading")
	}
	resp := f.sc.ocspStaple()
	want := fmt.Sprintf(`
# HELP meridian_tls_ocsp_staple_expiry_timestamp_seconds End of validity (nextUpdate) of the OCSP response stapled to a static certificate, as a Unix time, by the certificate's first name and key type; no series while none is stapled.
# TYPE meridian_tls_ocsp_staple_expiry_timestamp_seconds gauge
meridian_tls_ocsp_staple_expiry_timestamp_seconds{key="ecdsa",name="api.example.com"} %d
`, resp.NextUpdate.Unix())
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "meridian_tls_ocsp_staple_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if got := fetchCount(t, f.reg, "stapled"); got != 1 {
		t.Errorf("stapled fetches %v, want 1", got)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}

	// Refreshed at the half-life.
	if err := f.m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var current []byte
	waitFor(t, "a refreshed staple", func() bool {
		current = f.staple(t)
		return current != nil && !bytes.Equal(current, first)
	})

	// A response that does not verify does not replace it.
	f.r.set("wrong-signer", 8*time.Second, 20*time.Second)
	base := f.sc.ocsp.rejected.Load()
	waitFor(t, "a rejected refresh", func() bool { return f.sc.ocsp.rejected.Load() > base })
	last := f.sc.ocspStaple().Raw
	if got := f.staple(t); !bytes.Equal(got, last) {
		t.Error("after a rejected refresh the staple is not the last good one")
	}

	// The responder goes away: the staple stays while it is valid.
	f.r.srv.Close()
	failed := f.sc.ocsp.failed.Load()
	waitFor(t, "two failed refreshes", func() bool { return f.sc.ocsp.failed.Load() >= failed+2 })
	if got := f.staple(t); got == nil || !bytes.Equal(got, last) {
		t.Errorf("with the responder gone the staple changed or went (%d bytes)", len(got))
	}
	if !strings.Contains(f.log.String(), "OCSP refresh failed; keeping the current staple") {
		t.Errorf("no log of the failed refresh:\n%s", f.log.String())
	}
}

func TestOCSPExpiredStapleDropped(t *testing.T) {
	t.Parallel()
	// One good response valid 4 s more (dropped 1 s early), then the
	// responder fails.
	f := newOCSPFixture(t, "good", func(r *ocspResponder) {
		r.set("good", 3*time.Second, 7*time.Second)
		r.after = "error"
	})
	if f.staple(t) == nil {
		t.Fatal("no staple after loading")
	}
	if err := f.m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expired staple to go", func() bool { return f.staple(t) == nil })
	if !strings.Contains(f.log.String(), "OCSP staple expired before a refresh succeeded; serving none") {
		t.Errorf("no log of the dropped staple:\n%s", f.log.String())
	}
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(""), "meridian_tls_ocsp_staple_expiry_timestamp_seconds"); err != nil {
		t.Errorf("an expiry series without a staple: %v", err)
	}
}

func TestOCSPRevokedDropsStaple(t *testing.T) {
	t.Parallel()
	f := newOCSPFixture(t, "good", func(r *ocspResponder) { r.set("good", 8*time.Second, 20*time.Second) })
	if f.staple(t) == nil {
		t.Fatal("no staple after loading")
	}
	f.r.set("revoked", 8*time.Second, 20*time.Second)
	if err := f.m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the staple to go", func() bool { return f.staple(t) == nil })
	if !strings.Contains(f.log.String(), "certificate revoked") {
		t.Errorf("no log of the revocation:\n%s", f.log.String())
	}
}

func TestOCSPBadResponsesNotStapled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode   string
		result string // the fetch's counted result
		log    string
	}{
		{"delegated", "stapled", "OCSP staple obtained"},
		{"revoked", "rejected", "revoked"},
		{"unknown", "rejected", "does not know the certificate"},
		{"other-serial", "rejected", "no response matching the supplied certificate"},
		{"wrong-signer", "rejected", "bad OCSP signature"},
		{"expired", "rejected", "the OCSP response expired"},
		{"future", "rejected", "from the future"},
		{"beyond-cert", "rejected", "valid after the certificate expires"},
		{"undelegated", "rejected", "not delegated for OCSP signing"},
		{"garbage", "rejected", "parsing the OCSP response"},
		{"error", "failed", "500 Internal Server Error"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			f := newOCSPFixture(t, tc.mode, nil)
			got := f.staple(t)
			if stapled := got != nil; stapled != (tc.result == "stapled") {
				t.Errorf("stapled %v, want %v", stapled, tc.result == "stapled")
			}
			for _, result := range []string{"stapled", "failed", "rejected"} {
				want := 0.0
				if result == tc.result {
					want = 1
				}
				if n := fetchCount(t, f.reg, result); n != want {
					t.Errorf("%s fetches %v, want %v", result, n, want)
				}
			}
			if !strings.Contains(f.log.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, f.log.String())
			}
			if f.r.requests.Load() != 1 {
				t.Errorf("responder asked %d times while loading, want 1", f.r.requests.Load())
			}
		})
	}
}

func TestOCSPNeedsIssuerInFile(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "test ca")
	r := newOCSPResponder(t, ca, "good")
	dir := t.TempDir()
	certFile, keyFile, _ := ca.issue(t, dir, "api", ecKey(t), r.srv.URL, "api.example.com")
	// Keep the leaf only.
	chain, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(chain)
	leafOnly := filepath.Join(dir, "leaf.pem")
	writeFile(t, leafOnly, pem.EncodeToMemory(block))
	var log syncBuffer
	m, err := New(config.TLS{Certificates: []config.Certificate{{CertFile: leafOnly, KeyFile: keyFile}}},
		Options{Logger: slogTo(&log), ocspTiming: &fastOCSP})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if m.static.list[0].ocsp != nil || r.requests.Load() != 0 {
		t.Error("OCSP fetched without the issuer to check the response against")
	}
	if !strings.Contains(log.String(), "no issuer certificate after it") {
		t.Errorf("no warning:\n%s", log.String())
	}
}

// fetchCount reads meridian_tls_ocsp_fetches_total of api.example.com
// for result from reg.
func fetchCount(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meridian_tls_ocsp_fetches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["name"] == "api.example.com" && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no meridian_tls_ocsp_fetches_total{result=%q}", result)
	return 0
}

// slogTo returns a logger writing text to buf.
func slogTo(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestOCSPNextRefresh(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := newOCSPStapler(nil, nil, slog.Default())
	o.now = func() time.Time { return now }
	resp := func(thisUpdate, nextUpdate time.Duration) *ocsp.Response {
		r := &ocsp.Response{ThisUpdate: now.Add(thisUpdate)}
		if nextUpdate != 0 {
			r.NextUpdate = now.Add(nextUpdate)
		}
		return r
	}
	for _, tc := range []struct {
		name     string
		resp     *ocsp.Response
		failures int
		want     time.Duration
	}{
		{"no staple yet", nil, 0, time.Minute},
		{"halfway through validity", resp(0, 96*time.Hour), 0, 48 * time.Hour},
		{"halfway already passed", resp(-72*time.Hour, 24*time.Hour), 0, time.Minute},
		{"at the margin before nextUpdate", resp(-72*time.Hour, 30*time.Second), 0, 0},
		{"no nextUpdate", resp(-time.Hour, 0), 0, time.Hour},
		{"third failure", resp(-72*time.Hour, 24*time.Hour), 3, 4 * time.Minute},
		{"failure capped by the staple's end", resp(-72*time.Hour, 3*time.Minute), 3, 2 * time.Minute},
		{"many failures", nil, 40, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &staticCert{ocsp: &ocspState{resp: tc.resp}}
			if got := o.nextRefresh(sc, tc.failures); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// FuzzOCSPResponse feeds responder bytes through what a fetch does with
// them: nothing panics, and whatever is accepted verifies against the
// issuer, is for the certificate and says good.
func FuzzOCSPResponse(f *testing.F) {
	ca := &testCA{}
	key, err := ecdsaFromSeed()
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "fuzz ca"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		f.Fatal(err)
	}
	ca.key = key
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(42), NotBefore: time.Unix(0, 0), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err = x509.CreateCertificate(rand.Reader, leafTmpl, ca.cert, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	for _, st := range []int{ocsp.Good, ocsp.Revoked} {
		raw, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
			Status: st, SerialNumber: leaf.SerialNumber, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour),
		}, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01}) // malformedRequest
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp, err := ocsp.ParseResponseForCert(raw, leaf, ca.cert)
		if err != nil {
			return
		}
		if checkOCSP(resp, leaf, ca.cert, now) != nil {
			return
		}
		if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Fatalf("accepted status %d serial %v", resp.Status, resp.SerialNumber)
		}
		if resp.Certificate == nil {
			if err := resp.CheckSignatureFrom(ca.cert); err != nil {
				t.Fatalf("accepted a response the issuer did not sign: %v", err)
			}
		}
	})
}

// ecdsaFromSeed returns a fixed P-256 key, so the seeds stay valid
// between runs.
func ecdsaFromSeed() (*ecdsa.PrivateKey, error) {
	return ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x5a}, 32))
}
