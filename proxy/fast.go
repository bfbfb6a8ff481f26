package proxy

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h2"
)

// The fast path (its connection engine is proxy/internal/fastpath; this
// file wires it to the proxy) serves HTTP/1.1 requests the way HAProxy
// does: one goroutine per client connection reads request heads into a
// pooled buffer, parses them in place and forwards the ones it can take over
// pooled keep-alive connections to the endpoints, with no http.Request,
// header map or context per request. It makes the same decisions as
// ServeHTTP (routing, policy, endpoint choice, retries and failover,
// passive health reports, metrics, forwarding headers) through the same
// functions. HTTP/2 (h2c or by ALPN) is served by the h2 engine on the
// same goroutine (fast_h2.go). Anything else — HTTP/1.0, upgrades,
// Expect, chunked or large request bodies, sticky cookies, https
// endpoints, heads that do not parse cleanly or fit the buffer — goes to
// net/http with the bytes already read, and the connection stays there.

// Serve accepts connections on ln and serves them: HTTP/1.1 requests the
// fast path can take are forwarded by it, everything else is handed to
// srv (normally built by Server), which then serves the rest of that
// connection. TLS connections (ln from tls.NewListener) are handshaken
// first; those that chose h2, and cleartext ones that open with the
// HTTP/2 preface, are served by the h2 engine, each stream of a plain
// service through ServePlain and the others through srv.Handler. Every
// connection counts
// against the proxy's Limits until it closes, whichever path serves it;
// one beyond them is closed as soon as it is accepted.
//
// Shutdown stops what Serve runs and waits for its connections. srv's own
// Shutdown or Close stops the listener too, and the fast path then closes
// its idle connections at once and its busy ones after their response,
// without waiting for them. When srv.Handler is not the proxy itself (a
// wrapper answering ACME HTTP-01 challenges, say), requests under
// /.well-known/ go to srv.Handler and the rest are forwarded as the proxy
// would. Serve returns http.ErrServerClosed after Shutdown or Close, like
// srv.Serve.
func (p *Proxy) Serve(ln net.Listener, srv *http.Server) error {
	if srv.Handler == nil {
		srv.Handler = p
	}
	fs := &fastServer{
		p:          p,
		srv:        srv,
		next:       srv.Handler,
		direct:     srv.Handler == p,
		readHeader: srv.ReadHeaderTimeout,
		idle:       srv.IdleTimeout,
		eng:        fastpath.NewServer(ln, p.log),
	}
	fs.eng.OnShutdown, fs.eng.OnClose = fs.shutdownH2, fs.closeH2
	if fs.readHeader <= 0 {
		fs.readHeader = ReadHeaderTimeout
	}
	if fs.idle <= 0 {
		fs.idle = IdleTimeout
	}
	eng := fs.eng
	eng.ReadHeader, eng.Idle = fs.readHeader, fs.idle
	eng.Busy, eng.BusyIdle = &p.conns.busy, p.conns.lim.BusyIdleTimeout
	eng.Route, eng.ServeH2, eng.H2NetHTTP = fs.route, fs.serveH2, h2NetHTTP
	eng.MaxHeaderBytes = srv.MaxHeaderBytes
	if !p.serving.add(fs) {
		_ = ln.Close() // Shutdown came first
		return http.ErrServerClosed
	}
	defer p.serving.remove(fs)
	fs.hand = fastpath.NewHandoff(ln.Addr(), func() {
		_ = ln.Close() // the accept loop ends with it
	})
	eng.Hand = fs.hand
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		eng.ConnState(c, st)
		if prev != nil {
			prev(c, st)
		}
	}

	slow := make(chan error, 1)
	go func() {
		err := srv.Serve(fs.hand)
		_ = fs.hand.Close() // net/http stopped: so does the fast path
		slow <- err
	}()
	err := fastpath.Accept(fs.eng, fs.admit, fs.eng.ServeConn)
	_ = fs.hand.Close()
	serr := <-slow
	fs.eng.Shutdown() // when srv was shut down or closed on its own
	if errors.Is(serr, http.ErrServerClosed) || fs.stopped.Load() {
		return http.ErrServerClosed
	}
	return err
}

// fastServer is one listener's fast path.
type fastServer struct {
	p          *Proxy
	srv        *http.Server
	eng        *fastpath.Server  // accepts, tracks and stops the connections
	hand       *fastpath.Handoff // feeds net/http
	next       http.Handler      // srv.Handler as Serve found it
	direct     bool              // next is the proxy itself
	readHeader time.Duration
	idle       time.Duration
	// h2 serves the HTTP/2 connections (fast_h2.go).
	h2once sync.Once
	h2     *h2.Server

	stopped atomic.Bool // by Shutdown
}

// admit takes a connection within the connection limits; one over a
// limit is closed (and counted), with nothing to tell the client.
func (fs *fastServer) admit(c net.Conn) (fastpath.Slot, bool) {
	src := sourceKey(c.RemoteAddr())
	if !fs.p.conns.acquire(src) {
		_ = c.Close()
		return nil, false
	}
	return &connSlot{l: fs.p.conns, src: src}, true
}

// shortenIdle moves the deadline of every idle connection to the busy idle
// timeout after it went idle: HTTP/1.1 connections waiting for a request
// and HTTP/2 connections with no open stream.
func (fs *fastServer) shortenIdle() {
	d := min(fs.p.conns.lim.BusyIdleTimeout, fs.idle)
	fs.eng.ShortenIdle(d)
	fs.h2Server().ShortenIdle(d)
}
