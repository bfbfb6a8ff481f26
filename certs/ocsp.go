package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP stapling of static certificates. A certificate whose Authority
// Information Access names an OCSP responder, and whose file carries its
// issuer's certificate after it, gets a response fetched when it is
// loaded and refreshed halfway through each response's validity. Only a
// response that verifies against the issuer, is for this certificate's
// serial, says "good" and is current is stapled; when a refresh fails
// the previous staple is kept until it expires, unless the responder said
// "revoked".
const (
	// ocspLoadTimeout bounds the fetches made while the certificates are
	// loaded, all of them together.
	ocspLoadTimeout = 5 * time.Second
	// ocspFetchTimeout bounds one fetch during refreshes.
	ocspFetchTimeout = 10 * time.Second
	// ocspMaxResponse is the largest response body read.
	ocspMaxResponse = 1 << 20
	// ocspClockSkew is how far in the future a response's thisUpdate may
	// lie, for a responder whose clock runs ahead.
	ocspClockSkew = 5 * time.Minute
	// ocspNoNextUpdate is the refresh interval of a response without
	// nextUpdate (a responder saying newer information is always there).
	ocspNoNextUpdate = time.Hour
)

// ocspTiming are the refresh pauses; tests shorten them.
type ocspTiming struct {
	minRefresh time.Duration // shortest wait before a refresh
	retry      time.Duration // first wait after a failed fetch, doubled per failure
	maxRetry   time.Duration // longest wait after failed fetches
	// margin is how long before its nextUpdate a staple is dropped, so
	// that no client gets one that has expired on its way.
	margin time.Duration
}

var defaultOCSPTiming = ocspTiming{minRefresh: time.Minute, retry: time.Minute, maxRetry: time.Hour, margin: time.Minute}

// ocspState keeps the staple of one static certificate.
type ocspState struct {
	url    string
	issuer *x509.Certificate

	mu   sync.Mutex
	resp *ocsp.Response // the stapled response; nil = none

	// Fetch outcomes, for the metrics.
	stapled, failed, rejected atomic.Uint64
}

// ocspStapler fetches and checks OCSP responses.
type ocspStapler struct {
	client *http.Client
	timing ocspTiming
	now    func() time.Time
	log    *slog.Logger
}

func newOCSPStapler(client *http.Client, timing *ocspTiming, log *slog.Logger) *ocspStapler {
	if client == nil {
		client = &http.Client{
			Timeout: ocspFetchTimeout,
			// No proxy from the environment: the package reads none.
			// Fetches are hours apart: no idle connection is kept.
			Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: ocspFetchTimeout, DisableKeepAlives: true},
		}
	}
	t := defaultOCSPTiming
	if timing != nil {
		t = *timing
	}
	return &ocspStapler{client: client, timing: t, now: time.Now, log: log}
}

// prepare gives sc OCSP state when its certificate names a responder and
// its issuer is in the file. It fetches nothing.
func (o *ocspStapler) prepare(sc *staticCert) {
	leaf := sc.leaf.Leaf
	if len(leaf.OCSPServer) == 0 {
		return
	}
	if len(sc.leaf.Certificate) < 2 {
		o.log.Warn("certificate names an OCSP responder but its file has no issuer certificate after it; not stapling",
			"cert_file", sc.file)
		return
	}
	issuer, err := x509.ParseCertificate(sc.leaf.Certificate[1])
	if err == nil {
		err = leaf.CheckSignatureFrom(issuer)
	}
	if err != nil {
		o.log.Warn("the second certificate of the file is not the issuer of the first; not stapling",
			"cert_file", sc.file, "err", err)
		return
	}
	sc.ocsp = &ocspState{url: leaf.OCSPServer[0], issuer: issuer}
}

// fetchAll fetches a first staple for each of certs, concurrently, within
// ocspLoadTimeout altogether.
func (o *ocspStapler) fetchAll(certs []*staticCert) {
	ctx, cancel := context.WithTimeout(context.Background(), ocspLoadTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, sc := range certs {
		if sc.ocsp != nil {
			wg.Go(func() { o.refresh(ctx, sc) })
		}
	}
	wg.Wait()
}

// run keeps the staple of sc fresh until ctx ends.
func (o *ocspStapler) run(ctx context.Context, sc *staticCert) {
	failures := 0
	for {
		wait := o.nextRefresh(sc, failures)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		o.dropExpired(sc)
		if o.refresh(ctx, sc) {
			failures = 0
		} else {
			failures++
		}
	}
}

// nextRefresh is how long to wait before the next fetch for sc: halfway
// through the stapled response's validity, or after a pause growing with
// the failures since the last success, but no later than the staple's
// expiry, so that it is dropped on time.
func (o *ocspStapler) nextRefresh(sc *staticCert, failures int) time.Duration {
	now := o.now()
	sc.ocsp.mu.Lock()
	resp := sc.ocsp.resp
	sc.ocsp.mu.Unlock()
	var wait time.Duration
	switch {
	case failures > 0:
		wait = o.timing.retry << min(failures-1, 16)
		wait = min(wait, o.timing.maxRetry)
		if end := o.dropAt(resp); !end.IsZero() {
			wait = min(wait, max(end.Sub(now), 0))
		}
		return wait
	case resp == nil:
		wait = o.timing.retry
	case resp.NextUpdate.IsZero():
		wait = ocspNoNextUpdate
	default:
		half := resp.ThisUpdate.Add(resp.NextUpdate.Sub(resp.ThisUpdate) / 2)
		wait = max(half.Sub(now), o.timing.minRefresh)
		wait = min(wait, max(o.dropAt(resp).Sub(now), 0))
	}
	return wait
}

// dropAt is when the staple resp stops being served: ocspTiming.margin
// before its nextUpdate; zero without one.
func (o *ocspStapler) dropAt(resp *ocsp.Response) time.Time {
	if resp == nil || resp.NextUpdate.IsZero() {
		return time.Time{}
	}
	return resp.NextUpdate.Add(-o.timing.margin)
}

// dropExpired stops serving sc's staple once its time is up (dropAt).
func (o *ocspStapler) dropExpired(sc *staticCert) {
	st := sc.ocsp
	st.mu.Lock()
	defer st.mu.Unlock()
	if end := o.dropAt(st.resp); end.IsZero() || o.now().Before(end) {
		return
	}
	o.log.Error("OCSP staple expired before a refresh succeeded; serving none",
		"cert_file", sc.file, "responder", st.url, "next_update", st.resp.NextUpdate)
	st.resp = nil
	o.staple(sc, nil)
}

// refresh fetches a response for sc and staples it when it passes the
// checks. On failure the current staple is kept (dropExpired ends it),
// unless the answer was "revoked". It reports whether a new response was
// stapled.
func (o *ocspStapler) refresh(ctx context.Context, sc *staticCert) bool {
	st := sc.ocsp
	raw, resp, err := o.fetch(ctx, sc)
	if err == nil {
		err = checkOCSP(resp, sc.leaf.Leaf, st.issuer, o.now())
		if end := o.dropAt(resp); err == nil && !end.IsZero() && !o.now().Before(end) {
			err = fmt.Errorf("the OCSP response expires within %s (nextUpdate %s)", o.timing.margin, resp.NextUpdate.UTC().Format(time.RFC3339))
		}
		if err != nil {
			err = rejectedError{err}
		}
	}
	var rejected rejectedError
	switch {
	case errors.As(err, &rejected):
		st.rejected.Add(1)
	case err != nil:
		st.failed.Add(1)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		log := o.log.With("cert_file", sc.file, "responder", st.url, "err", err)
		switch {
		case errors.Is(err, errRevoked):
			// Unlike a failed fetch, an answer: a previous "good" is
			// no longer stapled.
			st.resp = nil
			o.staple(sc, nil)
			log.Error("certificate revoked; serving no OCSP staple, replace the certificate")
		case st.resp != nil:
			log.Warn("OCSP refresh failed; keeping the current staple", "staple_next_update", st.resp.NextUpdate)
		default:
			log.Warn("OCSP fetch failed; no staple")
		}
		return false
	}
	if st.resp == nil {
		o.log.Info("OCSP staple obtained", "cert_file", sc.file, "next_update", resp.NextUpdate)
	} else {
		o.log.Debug("OCSP staple refreshed", "cert_file", sc.file, "next_update", resp.NextUpdate)
	}
	st.resp = resp
	st.stapled.Add(1)
	o.staple(sc, raw)
	return true
}

// staple publishes a copy of sc's certificate with raw as its staple
// (tls.Certificate.OCSPStaple; nil: none). The certificate in use is
// never changed in place.
func (o *ocspStapler) staple(sc *staticCert, raw []byte) {
	c := *sc.leaf
	c.OCSPStaple = raw
	sc.cur.Store(&c)
}

// fetch asks sc's responder about its certificate (an HTTP POST, RFC 6960
// appendix A) and parses the answer against the certificate and issuer:
// the signature is the issuer's (or a responder certificate's it signed)
// and the response is for this serial.
func (o *ocspStapler) fetch(ctx context.Context, sc *staticCert) ([]byte, *ocsp.Response, error) {
	st := sc.ocsp
	req, err := ocsp.CreateRequest(sc.leaf.Leaf, st.issuer, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("making the OCSP request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, ocspFetchTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, st.url, bytes.NewReader(req))
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP responder %q: %w", st.url, err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	hresp, err := o.client.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("asking the OCSP responder: %w", err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("OCSP responder %q answered %s", st.url, hresp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, ocspMaxResponse+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the OCSP response: %w", err)
	}
	if len(raw) > ocspMaxResponse {
		return nil, nil, fmt.Errorf("OCSP response larger than %d bytes", ocspMaxResponse)
	}
	resp, err := ocsp.ParseResponseForCert(raw, sc.leaf.Leaf, st.issuer)
	if err != nil {
		return nil, nil, rejectedError{fmt.Errorf("parsing the OCSP response: %w", err)}
	}
	return raw, resp, nil
}

// rejectedError is a response the responder gave that is not stapled:
// one that does not parse or verify, or does not pass checkOCSP.
type rejectedError struct{ err error }

func (e rejectedError) Error() string { return e.err.Error() }
func (e rejectedError) Unwrap() error { return e.err }

// errRevoked is a response saying the certificate is revoked.
var errRevoked = errors.New("the OCSP responder says the certificate is revoked")

// checkOCSP accepts a parsed response for stapling, as certmagic does: it
// says good, is current at now, ends no later than the certificate, and a
// responder certificate it carries is one delegated for OCSP signing.
func checkOCSP(resp *ocsp.Response, leaf, issuer *x509.Certificate, now time.Time) error {
	switch resp.Status {
	case ocsp.Good:
	case ocsp.Revoked:
		return fmt.Errorf("%w (at %s)", errRevoked, resp.RevokedAt.UTC().Format(time.RFC3339))
	default:
		return errors.New("the OCSP responder does not know the certificate")
	}
	if resp.SerialNumber == nil || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return errors.New("the OCSP response is for another certificate")
	}
	if resp.ThisUpdate.After(now.Add(ocspClockSkew)) {
		return fmt.Errorf("the OCSP response is from the future (thisUpdate %s)", resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !resp.NextUpdate.IsZero() {
		if !now.Before(resp.NextUpdate) {
			return fmt.Errorf("the OCSP response expired at %s", resp.NextUpdate.UTC().Format(time.RFC3339))
		}
		if resp.NextUpdate.After(leaf.NotAfter) {
			return fmt.Errorf("the OCSP response is valid after the certificate expires (nextUpdate %s)", resp.NextUpdate.UTC().Format(time.RFC3339))
		}
	}
	if c := resp.Certificate; c != nil && !c.Equal(issuer) {
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return errors.New("the OCSP response is signed by a certificate not delegated for OCSP signing")
		}
		if now.After(c.NotAfter) || now.Before(c.NotBefore) {
			return errors.New("the OCSP response is signed by a responder certificate outside its validity")
		}
	}
	return nil
}

// ocspStaple returns the current staple's response of sc, or nil.
func (sc *staticCert) ocspStaple() *ocsp.Response {
	if sc.ocsp == nil {
		return nil
	}
	sc.ocsp.mu.Lock()
	defer sc.ocsp.mu.Unlock()
	return sc.ocsp.resp
}
