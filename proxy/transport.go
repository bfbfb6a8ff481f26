package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
)

// Upstream connection settings shared by every service.
const (
	maxIdlePerHost  = 256 // idle keep-alive connections per endpoint; more are closed
	idleConnTimeout = fastpath.IdleConnTimeout
	tcpKeepAlive    = fastpath.TCPKeepAlive
	expectContinue  = time.Second
	h2PingAfter     = 30 * time.Second // idle HTTP/2 upstream connections are pinged
	h2PingTimeout   = 15 * time.Second
)

// minRetries is how many retries a service may always have in flight,
// whatever its retry budget.
const minRetries = 3

// endpointKey identifies an endpoint across config reloads.
type endpointKey struct{ region, url string }

// endpointState is what outlives a routing table for one endpoint.
type endpointState struct {
	inflight atomic.Int64  // attempts in flight, for least-loaded picks
	fast     fastpath.Pool // the fast path's idle connections (internal/fastpath)
}

// transportKey is the service settings its transport is built from.
type transportKey struct {
	connect time.Duration // dial and TLS handshake
	header  time.Duration // wait for a response head per attempt; 0 none
}

// serviceState is what outlives a routing table for one service: its
// upstream connection pool and its retry budget counters.
type serviceState struct {
	key       transportKey
	transport *http.Transport
	load      *load
}

// load counts a service's requests and retries in flight.
type load struct {
	active   atomic.Int64
	retrying atomic.Int64
}

// acquire takes a retry from the budget: retries in flight may not exceed
// share of the requests in flight, and minRetries are always allowed.
func (l *load) acquire(share float64) bool {
	limit := max(int64(share*float64(l.active.Load())), minRetries)
	if l.retrying.Add(1) > limit {
		l.retrying.Add(-1)
		return false
	}
	return true
}

// newServiceState builds a service's transport; counters carry over from
// prev (nil for a new service).
func newServiceState(k transportKey, base *tls.Config, prev *serviceState) *serviceState {
	st := &serviceState{key: k, transport: newTransport(k, base), load: new(load)}
	if prev != nil {
		st.load = prev.load
	}
	return st
}

// newTransport returns the upstream transport of one service. It never
// uses environment proxies and never compresses on its own (the client's
// Accept-Encoding passes through).
func newTransport(k transportKey, base *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: k.connect, KeepAlive: tcpKeepAlive}
	t := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   k.connect,
		ResponseHeaderTimeout: k.header,
		ExpectContinueTimeout: expectContinue,
		DisableCompression:    true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: h2PingAfter,
			PingTimeout:     h2PingTimeout,
		},
	}
	if base != nil {
		t.TLSClientConfig = base.Clone()
	}
	return t
}
