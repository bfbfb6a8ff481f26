package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/meridian-edge/meridian/health"
)

// retrier is ReverseProxy's Transport: it runs the attempts of one
// exchange, retrying and failing over before any response byte reaches the
// client, and hands back only the response the client gets.
type retrier struct{}

var _ http.RoundTripper = retrier{}

// drainLimit bounds how much of a failed response is read to keep its
// connection for reuse; a longer body closes the connection instead.
const drainLimit = 4 << 10

// failure classifies one attempt.
type failure uint8

const (
	failNone    failure = iota // a response for the client, as it is
	failGone                   // the client went away or the request timed out as a whole
	failConnect                // never reached the upstream (dial or TLS handshake)
	failTimeout                // no response head in time
	failReset                  // the exchange broke after the request was sent
	failStatus                 // a retry_on status
)

func (retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := exchangeOf(req.Context())
	if ex == nil {
		return nil, errors.New("proxy: round trip outside an exchange")
	}
	for {
		ex.attempts++
		resp, err := ex.svc.st.transport.RoundTrip(req)
		f, reason := ex.judge(req, resp, err)
		if !ex.advance(f, reason) {
			return resp, err
		}
		if resp != nil {
			_, _ = io.CopyN(io.Discard, resp.Body, drainLimit) // only to reuse the connection
			_ = resp.Body.Close()                              // the response is dropped either way
		}
		req = ex.retryRequest(req)
	}
}

// advance applies the retry rules to an attempt judged f: when the
// request may be retried, it moves the exchange to the next endpoint,
// counts the retry (and failover) and returns true. Both the net/http
// path and the fast path retry through here.
func (ex *exchange) advance(f failure, reason string) bool {
	ex.lastFail = f
	if f == failNone || f == failGone || !ex.mayRetry(f) {
		return false
	}
	// A retrying request holds one slot of the budget until it ends.
	// Retries after a connect failure take none: the request never
	// reached an upstream, so they add no load to any.
	take := f != failConnect && !ex.budgeted
	if take && !ex.svc.st.load.acquire(ex.svc.budget) {
		return false
	}
	prev := ex.ep
	next := ex.next()
	if next == nil {
		if take {
			ex.svc.st.load.retrying.Add(-1)
		}
		return false
	}
	ex.budgeted = ex.budgeted || take
	ex.retries++
	prev.st.inflight.Add(-1)
	ex.ep = next
	ex.svc.rm[prev.region.idx].retry(reason)
	if next.region != prev.region {
		ex.p.met.failover(ex.svc.name, prev.region.name, next.region.name)
	}
	return true
}

// judge classifies an attempt's result and reports the outcome to passive
// health; the reason names the retry_on condition that matched.
func (ex *exchange) judge(req *http.Request, resp *http.Response, err error) (failure, string) {
	if err == nil {
		return ex.judgeStatus(resp.StatusCode)
	}
	ctx := req.Context()
	if ex.clientAtFault(ctx) {
		return failGone, ""
	}
	if context.Cause(ctx) == errTimeout {
		ex.report(health.OutcomeTimeout)
		return failGone, ""
	}
	if ctx.Err() != nil {
		return failGone, "" // the client left: not the endpoint's fault
	}
	return ex.judgeError(err)
}

// judgeStatus judges an attempt that got a response head with code.
func (ex *exchange) judgeStatus(code int) (failure, string) {
	if code >= 500 {
		ex.report(health.Outcome5xx)
	} else {
		ex.report(health.OutcomeSuccess)
	}
	if reason, ok := ex.svc.retryOn.status(code); ok {
		return failStatus, reason
	}
	return failNone, ""
}

// judgeError judges an attempt that failed with err while the request as
// a whole was still live.
func (ex *exchange) judgeError(err error) (failure, string) {
	switch {
	case isConnectError(err):
		ex.report(health.OutcomeConnectFailure)
		return failConnect, reasonConnect
	case isTimeout(err):
		ex.report(health.OutcomeTimeout)
		return failTimeout, reasonTimeout
	}
	ex.report(health.Outcome5xx)
	return failReset, reasonReset
}

// mayRetry applies the service's retry rules to a failed attempt: attempts
// left, a matching retry_on condition, and a request that may be sent
// again (idempotent with a replayable body, or never sent at all).
func (ex *exchange) mayRetry(f failure) bool {
	if ex.attempts > ex.svc.retries {
		return false
	}
	ro := &ex.svc.retryOn
	switch f {
	case failConnect:
		return ro.connect && ex.untouched()
	case failTimeout:
		return ro.timeout && ex.idem && ex.replayable()
	case failReset:
		_, ok := ro.status(http.StatusBadGateway)
		return ok && ex.idem && ex.replayable()
	case failStatus:
		return ex.idem && ex.replayable()
	}
	return false
}

// isIdempotent is RFC 9110's idempotent methods, or any request carrying an
// idempotency key.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header["Idempotency-Key"] != nil || r.Header["X-Idempotency-Key"] != nil
}

// retryRequest returns a copy of req aimed at the exchange's current
// endpoint, with the body rewound.
func (ex *exchange) retryRequest(req *http.Request) *http.Request {
	r2 := new(http.Request)
	*r2 = *req
	u := new(url.URL)
	*u = *req.URL
	ex.target(u, ex.ep)
	r2.URL = u
	switch {
	case ex.replay != nil:
		r2.Body = io.NopCloser(bytes.NewReader(ex.replay))
	case ex.stream != nil:
		// Not ReverseProxy's wrapper: the failed attempt closed that.
		r2.Body = ex.stream
	}
	return r2
}

func (ex *exchange) report(o health.Outcome) {
	if r := ex.p.reporter; r != nil {
		r.Report(ex.ep.region.idx, ex.ep.idx, o)
	}
}

// isConnectError reports whether err means the request never reached the
// upstream: dialling or the TLS handshake failed.
func isConnectError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	if errors.As(err, &cv) || errors.As(err, &rh) {
		return true
	}
	return strings.Contains(err.Error(), "TLS handshake timeout")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// Retry reasons (the reason label) besides status codes.
const (
	reasonConnect = "connect-failure"
	reasonTimeout = "timeout"
	reasonReset   = "reset" // matched by retry_on 502 or 5xx
	reason5xx     = "5xx"
)

// retryOn is a parsed proxy.retry_on list.
type retryOn struct {
	connect, timeout, any5xx bool
	codes                    map[int]string // listed status → its reason label
}

func parseRetryOn(list []string) (retryOn, error) {
	ro := retryOn{codes: make(map[int]string)}
	for _, s := range list {
		switch strings.ToLower(s) {
		case reasonConnect:
			ro.connect = true
		case reasonTimeout:
			ro.timeout = true
		case reason5xx:
			ro.any5xx = true
		default:
			code, err := strconv.Atoi(s)
			if err != nil || len(s) != 3 || code < 100 || code > 599 {
				return ro, fmt.Errorf("retry_on %q is not connect-failure, timeout, 5xx or a status code", s)
			}
			ro.codes[code] = s
		}
	}
	return ro, nil
}

// status reports whether a response status is to be retried, and the
// reason label.
func (r *retryOn) status(code int) (string, bool) {
	if s, ok := r.codes[code]; ok {
		return s, true
	}
	if r.any5xx && code >= 500 && code <= 599 {
		return reason5xx, true
	}
	return "", false
}
