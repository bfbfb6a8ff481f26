package health

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"slices"
	"time"
)

// Probe transport settings. Probes keep their connections alive between
// rounds, so that a probe measures one request's round trip rather than a
// TCP and TLS handshake each time.
const (
	// maxProbeBody is how much of a response body a probe reads before it
	// closes it; a short body lets the connection be reused.
	maxProbeBody = 64 << 10
	// probeConnsPerHost bounds the connections to one upstream host:port,
	// idle or busy. Each endpoint probes one request at a time, so this
	// only matters for many endpoints sharing a host:port (different
	// paths): when a stall makes their probes bunch up, they queue for a
	// connection briefly instead of opening hundreds at once.
	probeConnsPerHost    = 64
	probeIdleConnTimeout = 90 * time.Second
	probeTCPKeepAlive    = 30 * time.Second
)

// prober checks an endpoint once. Each endpoint's prober is called from
// one goroutine at a time.
type prober interface {
	probe(ctx context.Context) result
}

// httpProber GETs a URL and checks the status code.
type httpProber struct {
	client  *http.Client
	url     string
	host    string      // Host header override
	header  http.Header // read-only, shared by every request
	expect  []int
	timeout time.Duration
}

func (p *httpProber) probe(ctx context.Context) result {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return errorResult(err)
	}
	req.Header = p.header
	if p.host != "" {
		req.Host = p.host
	}
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return errorResult(err)
	}
	rtt := time.Since(start)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	_ = resp.Body.Close()
	if !p.accepts(resp.StatusCode) {
		return statusResult(resp.StatusCode)
	}
	return okResult(rtt)
}

// accepts reports whether code passes: one of expect, or any 2xx when
// expect is empty.
func (p *httpProber) accepts(code int) bool {
	if len(p.expect) == 0 {
		return code >= 200 && code <= 299
	}
	return slices.Contains(p.expect, code)
}

// tcpProber opens a TCP connection and closes it.
type tcpProber struct {
	dialer  *net.Dialer
	addr    string
	timeout time.Duration
}

func (p *tcpProber) probe(ctx context.Context) result {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return errorResult(err)
	}
	rtt := time.Since(start)
	_ = conn.Close()
	return okResult(rtt)
}

// clients holds one HTTP client per TLS server name ("" = the URL's host),
// shared by every endpoint probed with it. Guarded by the Checker's mutex.
type clients struct {
	base *tls.Config // nil = system roots
	m    map[string]*http.Client
}

func (cs *clients) get(serverName string) *http.Client {
	if c, ok := cs.m[serverName]; ok {
		return c
	}
	var tc *tls.Config
	if cs.base != nil || serverName != "" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if cs.base != nil {
			tc = cs.base.Clone()
		}
		if serverName != "" {
			tc.ServerName = serverName
		}
	}
	tr := &http.Transport{
		Proxy:               nil, // probes go straight to the endpoint
		DialContext:         (&net.Dialer{KeepAlive: probeTCPKeepAlive}).DialContext,
		TLSClientConfig:     tc,
		MaxConnsPerHost:     probeConnsPerHost,
		MaxIdleConnsPerHost: probeConnsPerHost,
		IdleConnTimeout:     probeIdleConnTimeout,
		DisableCompression:  true,
	}
	c := &http.Client{
		Transport: tr,
		// A redirect is an answer like any other: judged by its status.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if cs.m == nil {
		cs.m = map[string]*http.Client{}
	}
	cs.m[serverName] = c
	return c
}

// prune closes and forgets the clients of server names not in use.
func (cs *clients) prune(inUse map[string]bool) {
	for name, c := range cs.m {
		if !inUse[name] {
			c.CloseIdleConnections()
			delete(cs.m, name)
		}
	}
}

func (cs *clients) closeIdle() {
	for _, c := range cs.m {
		c.CloseIdleConnections()
	}
}
