package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The fast path serves HTTP/1.1 requests the way HAProxy does: one
// goroutine per client connection reads request heads into a pooled
// buffer, parses them in place and forwards the ones it can take over
// pooled keep-alive connections to the endpoints, with no http.Request,
// header map or context per request. It makes the same decisions as
// ServeHTTP (routing, policy, endpoint choice, retries and failover,
// passive health reports, metrics, forwarding headers) through the same
// functions. Anything else — HTTP/2 (h2c or by ALPN), HTTP/1.0, upgrades,
// Expect, chunked or large request bodies, sticky cookies, https
// endpoints, heads that do not parse cleanly or fit the buffer — goes to
// net/http with the bytes already read, and the connection stays there.

// Serve accepts connections on ln and serves them: HTTP/1.1 requests the
// fast path can take are forwarded by it, everything else is handed to
// srv (normally built by Server), which then serves the rest of that
// connection. TLS connections (ln from tls.NewListener) are handshaken
// first; those that chose h2 go to srv at once.
//
// Serve wraps srv.Handler (nil means the proxy) and registers a shutdown
// hook: srv.Shutdown stops accepting, closes idle fast-path connections at
// once and busy ones after their response, and waits for them within its
// context; srv.Close closes them all. When srv.Handler is not the proxy
// itself (a wrapper answering ACME HTTP-01 challenges, say), requests under
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
		next:       srv.Handler,
		direct:     srv.Handler == p,
		readHeader: srv.ReadHeaderTimeout,
		idle:       srv.IdleTimeout,
		conns:      make(map[*fconn]struct{}),
		drained:    make(chan struct{}),
		drainReady: make(chan struct{}),
	}
	if fs.readHeader <= 0 {
		fs.readHeader = ReadHeaderTimeout
	}
	if fs.idle <= 0 {
		fs.idle = IdleTimeout
	}
	fs.hand = &handoff{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{}), onClose: func() {
		_ = ln.Close() // the accept loop ends with it
	}}
	srv.Handler = fs
	srv.RegisterOnShutdown(fs.shutdown)

	slow := make(chan error, 1)
	go func() {
		err := srv.Serve(fs.hand)
		_ = fs.hand.Close() // net/http stopped: so does the fast path
		slow <- err
	}()
	go fs.drainConns()
	// Take no connection before srv serves the drain request, so that
	// Shutdown finds it in place.
	select {
	case <-fs.drainReady:
	case <-fs.hand.done:
	case <-time.After(drainStartLimit):
		p.log.Warn("the server did not take the drain request: Shutdown will not wait for fast-path connections")
	}
	err := fs.accept()
	_ = fs.hand.Close()
	if serr := <-slow; errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// fastServer is one listener's fast path.
type fastServer struct {
	p          *Proxy
	ln         net.Listener
	hand       *handoff     // feeds net/http
	next       http.Handler // srv.Handler as Serve found it
	direct     bool         // next is the proxy itself
	readHeader time.Duration
	idle       time.Duration

	mu          sync.Mutex
	conns       map[*fconn]struct{}
	shutting    atomic.Bool
	drained     chan struct{} // closed once shutting and no connection is left
	drainedOnce sync.Once
	drainReady  chan struct{} // closed when srv serves the drain request
	readyOnce   sync.Once
}

// drainStartLimit bounds how long Serve waits for srv to take the drain
// request (it cannot when it serves no HTTP/1.1).
const drainStartLimit = 5 * time.Second

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
		go fs.serveConn(c)
	}
}

// serveConn runs one client connection.
func (fs *fastServer) serveConn(c net.Conn) {
	fc := newFconn(fs, c)
	if !fs.track(fc) {
		_ = c.Close() // shutting down
		fc.release()
		return
	}
	defer func() {
		if v := recover(); v != nil {
			fs.p.log.Error("panic serving a connection", "panic", v, "stack", string(debug.Stack()))
			fc.w.forget()
			_ = c.Close() // its state is unknown
			fs.untrack(fc)
		}
	}()
	handed := fc.serve()
	fs.untrack(fc)
	if !handed {
		_ = c.Close() // done with it; an error changes nothing
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

// shutdown is srv's shutdown hook: idle connections close now, busy ones
// after their response.
func (fs *fastServer) shutdown() {
	fs.mu.Lock()
	fs.shutting.Store(true)
	for fc := range fs.conns {
		if fc.state.CompareAndSwap(connIdle, connClosed) {
			_ = fc.c.Close() // its goroutine sees the read fail
			fc.w.wake()      // from an ordered wait; the runtime's poller wakes its own
		}
	}
	done := len(fs.conns) == 0
	fs.mu.Unlock()
	if done {
		fs.drainedOnce.Do(func() { close(fs.drained) })
	}
}

// closeAll closes every connection, busy or not (srv.Close).
func (fs *fastServer) closeAll() {
	fs.mu.Lock()
	fs.shutting.Store(true)
	for fc := range fs.conns {
		fc.state.Store(connClosed)
		_ = fc.c.Close() // its goroutine sees the read or write fail
		fc.w.wake()
	}
	fs.mu.Unlock()
}

// drainRemote is the remote address of the connection through which
// srv.Shutdown waits for the fast path.
const drainRemote = "meridian-fast-path"

// drainConns keeps one pipe connection open in srv whose only request lasts
// until the fast path has drained after shutdown began: so srv.Shutdown
// waits for fast-path connections as for its own (and gives up with its
// context). When srv.Close closes the pipe, the fast path closes too.
func (fs *fastServer) drainConns() {
	for {
		start := time.Now()
		a, b := net.Pipe()
		if !fs.hand.deliver(drainConn{a}) {
			_ = b.Close() // the server stopped
			return
		}
		_, err := io.WriteString(b, "GET / HTTP/1.1\r\nHost: "+drainRemote+"\r\n\r\n")
		if err == nil {
			_, _ = io.Copy(io.Discard, b) // until srv closes its end
		}
		_ = b.Close() // done either way
		if fs.hand.closed() {
			fs.closeAll()
			return
		}
		// The pipe closed while the server runs (a read timeout, say):
		// open another, but not in a tight loop.
		if d := time.Since(start); d < time.Second {
			time.Sleep(time.Second - d)
		}
	}
}

// ServeHTTP is srv's handler: the drain request waits, the rest go to the
// handler Serve found.
func (fs *fastServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.RemoteAddr == drainRemote {
		fs.readyOnce.Do(func() { close(fs.drainReady) })
		select {
		case <-fs.drained:
		case <-r.Context().Done():
		}
		return
	}
	fs.next.ServeHTTP(w, r)
}

// drainConn is the pipe end net/http serves the drain request on.
type drainConn struct{ net.Conn }

func (drainConn) RemoteAddr() net.Addr { return drainAddr{} }

type drainAddr struct{}

func (drainAddr) Network() string { return "pipe" }
func (drainAddr) String() string  { return drainRemote }

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

func (h *handoff) closed() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

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
