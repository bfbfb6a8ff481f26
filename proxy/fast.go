package proxy

import (
	"errors"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h2"
)

// The fast path serves HTTP/1.1 requests the way HAProxy does: one
// goroutine per client connection reads request heads into a pooled
// buffer, parses them in place and forwards the ones it can take over
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
		ln:         ln,
		srv:        srv,
		next:       srv.Handler,
		direct:     srv.Handler == p,
		readHeader: srv.ReadHeaderTimeout,
		idle:       srv.IdleTimeout,
		conns:      make(map[*fconn]struct{}),
		drained:    make(chan struct{}),
	}
	if fs.readHeader <= 0 {
		fs.readHeader = ReadHeaderTimeout
	}
	if fs.idle <= 0 {
		fs.idle = IdleTimeout
	}
	if !p.serving.add(fs) {
		_ = ln.Close() // Shutdown came first
		return http.ErrServerClosed
	}
	defer p.serving.remove(fs)
	fs.hand = &handoff{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{}), onClose: func() {
		_ = ln.Close() // the accept loop ends with it
	}}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if h, ok := c.(interface{ connState(http.ConnState) }); ok {
			h.connState(st) // a handed connection's screener follows it
		}
		if st == http.StateClosed {
			if slot, ok := fs.slots.LoadAndDelete(c); ok {
				slot.(*connSlot).release()
			}
		}
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
	err := fs.accept()
	_ = fs.hand.Close()
	serr := <-slow
	fs.shutdown() // when srv was shut down or closed on its own
	if errors.Is(serr, http.ErrServerClosed) || fs.stopped.Load() {
		return http.ErrServerClosed
	}
	return err
}

// fastServer is one listener's fast path.
type fastServer struct {
	p          *Proxy
	ln         net.Listener
	srv        *http.Server
	hand       *handoff     // feeds net/http
	next       http.Handler // srv.Handler as Serve found it
	direct     bool         // next is the proxy itself
	readHeader time.Duration
	idle       time.Duration
	// slots are the places in the connection counts of connections
	// handed to net/http as they are (h2 by ALPN, only with h2NetHTTP),
	// released when net/http reports them closed; the others are released
	// by handedConn.Close.
	slots sync.Map // net.Conn → *connSlot
	// h2 serves the HTTP/2 connections (fast_h2.go).
	h2once sync.Once
	h2     *h2.Server

	mu          sync.Mutex
	conns       map[*fconn]struct{}
	shutting    atomic.Bool
	stopped     atomic.Bool   // by Shutdown
	drained     chan struct{} // closed once shutting and no connection is left
	drainedOnce sync.Once
}

// accept runs the accept loop until the listener fails or closes, backing
// off on resource exhaustion as net/http does.
func (fs *fastServer) accept() error {
	var delay time.Duration
	for {
		c, err := fs.ln.Accept()
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) &&
				!errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.ENOMEM) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			fs.p.log.Error("accepting a connection", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		src := sourceKey(c.RemoteAddr())
		if !fs.p.conns.acquire(src) {
			_ = c.Close() // over a limit (counted); nothing to tell the client
			continue
		}
		go fs.serveConn(c, &connSlot{l: fs.p.conns, src: src})
	}
}

// serveConn runs one client connection.
func (fs *fastServer) serveConn(c net.Conn, slot *connSlot) {
	fc := newFconn(fs, c)
	if !fs.track(fc) {
		_ = c.Close() // shutting down
		slot.release()
		fc.release()
		return
	}
	defer func() {
		if v := recover(); v != nil {
			fs.p.log.Error("panic serving a connection", "panic", v, "stack", string(debug.Stack()))
			_ = c.Close() // its state is unknown
			slot.release()
			fs.untrack(fc)
		}
	}()
	fc.slot = slot
	handed := fc.serve()
	fs.untrack(fc)
	if !handed {
		_ = c.Close() // done with it; an error changes nothing
		slot.release()
	}
	fc.release()
}

func (fs *fastServer) track(fc *fconn) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.shutting.Load() {
		return false
	}
	fs.conns[fc] = struct{}{}
	return true
}

func (fs *fastServer) untrack(fc *fconn) {
	fs.mu.Lock()
	delete(fs.conns, fc)
	done := fs.shutting.Load() && len(fs.conns) == 0
	fs.mu.Unlock()
	if done {
		fs.drainedOnce.Do(func() { close(fs.drained) })
	}
}

// shutdown stops accepting; idle connections close now, busy ones after
// their response. Safe to call more than once.
func (fs *fastServer) shutdown() {
	fs.mu.Lock()
	fs.shutting.Store(true)
	for fc := range fs.conns {
		if fc.state.CompareAndSwap(connIdle, connClosed) {
			_ = fc.c.Close() // its goroutine sees the read fail
		}
	}
	done := len(fs.conns) == 0
	fs.mu.Unlock()
	fs.shutdownH2()
	_ = fs.ln.Close() // the accept loop ends with it
	if done {
		fs.drainedOnce.Do(func() { close(fs.drained) })
	}
}

// closeAll closes every connection, busy or not.
func (fs *fastServer) closeAll() {
	fs.mu.Lock()
	fs.shutting.Store(true)
	for fc := range fs.conns {
		fc.state.Store(connClosed)
		_ = fc.c.Close() // its goroutine sees the read or write fail
	}
	fs.mu.Unlock()
	fs.closeH2()
}

// shortenIdle moves the deadline of every idle connection to the busy idle
// timeout after it went idle.
func (fs *fastServer) shortenIdle() {
	d := fs.p.conns.lim.BusyIdleTimeout
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for fc := range fs.conns {
		if !fc.state.CompareAndSwap(connIdle, connShortening) {
			continue // busy: it waits with the short timeout when next idle
		}
		if since := fc.idleSince.Load(); since != 0 {
			fc.setWaitDeadline(time.Unix(0, since).Add(min(d, fs.idle)))
		}
		fc.state.Store(connIdle)
	}
}

// handoff is the net.Listener srv serves: it yields the connections the
// fast path hands over.
type handoff struct {
	addr    net.Addr
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	onClose func()
}

var _ net.Listener = (*handoff)(nil)

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() {
		close(h.done)
		h.onClose()
	})
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// deliver gives c to srv; once the listener is closed it closes c instead.
func (h *handoff) deliver(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		_ = c.Close() // nobody will serve it
		return false
	}
}
