package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// fconn is one client connection on the fast path. Only its own
// goroutine touches it, but for state, which shutdown reads.
type fconn struct {
	fs     *fastServer
	c      net.Conn
	tls    *tls.ConnectionState // nil on cleartext
	peer   netip.Addr           // unmapped, without zone
	peerIP string               // as X-Forwarded-For names it
	state  atomic.Int32
	in     inbuf
	bw     *bufio.Writer
	sw     sockWriter // bw's writer on cleartext
	sr     sockReader // what cleartext is read through outside serveRaw

	rq      h1.Request
	rs      h1.Response
	wire    []byte // the request as sent upstream: head, then body
	scratch []byte
	target  []byte // the client's request target, kept past the body read
	nread   int    // response bytes read from the upstream in this attempt
	sent    bool   // the request was written upstream in this attempt
	// upRead is the read deadline last set on the upstream connection.
	upRead time.Time

	// rhead is a response head rewritten in plain form; sizeBuf holds a
	// chunk-size line for the client.
	rhead   []byte
	sizeBuf [24]byte

	// rc is the client's file descriptor for serveRaw, nil on TLS;
	// onReadable is fc.readable, bound once per pooled fconn.
	rc         syscall.RawConn
	onReadable func(fd uintptr) bool
	// tcp is the client's TCP socket, to peek at while the upstream is
	// still to answer: rc on cleartext, the socket under TLS otherwise;
	// nil when there is none.
	tcp syscall.RawConn
	// The state of serveRaw: how it ended (and the parsed head's length
	// for doParsed), whether a wait is set up, whether the connection
	// waits idle, and whether a partial head has its deadline.
	act     action
	pending int
	armed   bool
	waiting bool
	partial bool

	// idleSince is when the connection last went idle (Unix nanoseconds),
	// for shortenIdle; slot is its place in the connection counts.
	idleSince atomic.Int64
	slot      *connSlot
}

// Connection states, for shutdown and shortenIdle.
const (
	connIdle       int32 = iota // waiting for a request: shutdown closes it
	connActive                  // a request is in progress
	connClosed                  // closed by shutdown
	connShortening              // idle, its deadline being shortened
)

var fconnPool = sync.Pool{New: func() any {
	fc := &fconn{in: inbuf{b: make([]byte, clientBufSize)}, bw: bufio.NewWriterSize(nil, 4<<10)}
	fc.onReadable = fc.readable
	fc.sw.step = fc.sw.writable
	fc.sr.step = fc.sr.readable
	return fc
}}

func newFconn(fs *fastServer, c net.Conn) *fconn {
	fc := fconnPool.Get().(*fconn)
	fc.fs, fc.c = fs, c
	fc.bw.Reset(c)
	fc.state.Store(connIdle)
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			fc.rc, fc.tcp = rc, rc
			fc.sw.c, fc.sw.rc, fc.sr.c, fc.sr.rc = c, rc, c, rc
			fc.bw.Reset(&fc.sw)
		}
	} else if tc, ok := c.(*tls.Conn); ok {
		if sc, ok := tc.NetConn().(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				fc.tcp = rc
			}
		}
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		fc.peer = ap.Addr().Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		fc.peerIP = host
	}
	return fc
}

// release returns the connection's buffers to the pool.
func (fc *fconn) release() {
	fc.bw.Reset(nil)
	fc.fs, fc.c, fc.tls, fc.peer, fc.peerIP, fc.rc, fc.tcp = nil, nil, nil, netip.Addr{}, "", nil, nil
	fc.slot = nil
	fc.idleSince.Store(0)
	fc.sw.c, fc.sw.rc, fc.sr.c, fc.sr.rc = nil, nil, nil, nil
	fc.in.r, fc.in.w = 0, 0
	if cap(fc.wire) > 128<<10 {
		fc.wire = nil // a large body's buffer is not kept
	}
	if cap(fc.rhead) > 64<<10 {
		fc.rhead = nil
	}
	clear(fc.rq.Fields[:])
	clear(fc.rs.Fields)
	fconnPool.Put(fc)
}

// src is what the client's connection is read through outside serveRaw.
func (fc *fconn) src() io.Reader {
	if fc.sr.rc != nil {
		return &fc.sr
	}
	return fc.c
}

// setActive marks a request in progress; false when shutdown closed the
// connection first. It waits for a shortenIdle under way to finish, so
// that the deadlines the request sets are not overwritten.
func (fc *fconn) setActive() bool {
	for {
		if fc.state.CompareAndSwap(connIdle, connActive) {
			return true
		}
		if fc.state.Load() != connShortening {
			return false
		}
		runtime.Gosched()
	}
}

// setIdle marks the connection idle since now; false when the server is
// shutting down, and the connection must close.
func (fc *fconn) setIdle(now time.Time) bool {
	fc.idleSince.Store(now.UnixNano()) // before the state: shortenIdle reads it
	fc.state.Store(connIdle)
	return !fc.fs.shutting.Load()
}

// idleTimeout is how long the connection may wait for its next request.
func (fs *fastServer) idleTimeout() time.Duration { return fs.p.conns.idleTimeout(fs.idle) }

// serve runs the connection until it closes or is handed to net/http;
// it returns true in the second case.
func (fc *fconn) serve() (handed bool) {
	if tc, ok := fc.c.(*tls.Conn); ok {
		h2, ok := fc.handshake(tc)
		if !ok {
			return false
		}
		if h2 && h2NetHTTP {
			fc.handoff(false)
			return true
		}
		if h2 {
			fc.serveH2(nil)
			return false
		}
	}
	for first := true; ; first = false {
		switch fc.next(first) {
		case doClose:
			return false
		case doHandoff:
			if first && isH2Preface(fc.in.buffered()) {
				fc.serveH2(fc.in.buffered())
				return false
			}
			if why := fc.screen(); why != h1.FramingOK {
				fc.refuse(why)
				return false
			}
			fc.handoff(true)
			return true
		}
	}
}

// next serves the next request, or on a cleartext connection after the
// first, every request up to one that needs to read its body.
func (fc *fconn) next(first bool) action {
	if fc.rc != nil && !first {
		if act := fc.serveRaw(); act != doParsed {
			return act
		}
		return fc.route(fc.pending)
	}
	n, ok := fc.readHead(first)
	switch {
	case !ok:
		return doClose
	case n < 0:
		return doHandoff
	}
	return fc.handle(n)
}

// serveRaw serves requests from inside a raw read of the client's socket.
//
// net.Conn.Read tries a read before it waits, and right after a response
// the client cannot have sent its next request yet, so that read fails
// with EAGAIN: a wasted system call per request. A raw read's callback
// runs after the poller's readiness was reset, and returning false waits
// for readiness without reading; readable serves the requests it reads,
// then returns false. Bytes that arrive while it serves them set the
// readiness again, so the wait ends at once; only a read that filled the
// buffer may leave bytes behind without a new event, and readable reads
// again after one. The first call after entry always reads.
//
// serveRaw ends with the action of a request that closes or hands off the
// connection, or doParsed with the head of a request whose body is still
// to be read (fc.pending long), which the blocking path serves.
func (fc *fconn) serveRaw() action {
	fc.act, fc.armed, fc.waiting, fc.partial = doClose, false, false, false
	if err := fc.rc.Read(fc.onReadable); err != nil {
		// The idle or header timeout, or shutdown closed the connection.
		return doClose
	}
	return fc.act
}

// readable is serveRaw's callback: true ends the raw read with fc.act.
func (fc *fconn) readable(fd uintptr) bool {
	drained := false
	for {
		if fc.serveBuffered() {
			return true
		}
		if drained {
			return fc.arm()
		}
		if fc.in.w == len(fc.in.b) {
			if fc.in.r == 0 {
				fc.act = doHandoff // a head too large: net/http answers it
				return true
			}
			fc.in.w = copy(fc.in.b, fc.in.b[fc.in.r:fc.in.w])
			fc.in.r = 0
		}
		space := len(fc.in.b) - fc.in.w
		n, err := readFD(fd, fc.in.b[fc.in.w:])
		switch {
		case err == unix.EAGAIN:
			if fc.armed {
				return false
			}
			return fc.arm()
		case err != nil || n <= 0:
			fc.act = doClose // the client went away
			return true
		}
		fc.in.w += n
		fc.armed = false
		if fc.waiting {
			fc.waiting = false
			if !fc.setActive() {
				fc.act = doClose // shutdown closed it first
				return true
			}
		}
		drained = n < space
	}
}

// serveBuffered serves the complete request heads in the buffer; true when
// one ends the raw read.
func (fc *fconn) serveBuffered() bool {
	for {
		n := h1.HeadEnd(fc.in.buffered(), 0)
		if n < 0 {
			return false
		}
		fc.partial = false
		rq := &fc.rq
		if !rq.Parse(fc.in.buffered()[:n]) {
			fc.act = doHandoff
			return true
		}
		if rq.CLen > int64(len(fc.in.buffered())-n) {
			fc.act, fc.pending = doParsed, n
			return true
		}
		if act := fc.route(n); act != doNext {
			fc.act = act
			return true
		}
	}
}

// arm sets up the wait for more bytes: the idle timeout between requests,
// or the header timeout from the first bytes of a head. It returns false
// to wait, or true with fc.act when the connection is to close.
func (fc *fconn) arm() bool {
	fc.armed = true
	if len(fc.in.buffered()) > 0 {
		if !fc.partial {
			fc.partial = true
			fc.setWaitDeadline(time.Now().Add(fc.fs.readHeader))
		}
		return false
	}
	fc.partial = false
	now := time.Now()
	if !fc.setIdle(now) {
		fc.act = doClose // shutting down
		return true
	}
	fc.waiting = true
	fc.setWaitDeadline(now.Add(fc.fs.idleTimeout()))
	return false
}

// setWaitDeadline sets the deadline of serveRaw's wait.
func (fc *fconn) setWaitDeadline(t time.Time) {
	_ = fc.c.SetReadDeadline(t) // failing, the wait fails too
}

// handshake runs the TLS handshake within the read-header timeout and
// reports whether the client chose HTTP/2.
func (fc *fconn) handshake(tc *tls.Conn) (h2, ok bool) {
	d := time.Now().Add(fc.fs.readHeader)
	_ = tc.SetDeadline(d) // a failed deadline shows as a failed handshake
	ctx, cancel := context.WithDeadline(context.Background(), d)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		answerPlainOnTLS(err)
		fc.fs.p.log.Debug("tls handshake failed", "peer", fc.peerIP, "err", err)
		return false, false
	}
	st := tc.ConnectionState()
	fc.tls = &st
	return st.NegotiatedProtocol == "h2", true
}

// readHead waits for a complete request head in the buffer and returns its
// length, or -1 when the head does not fit (net/http takes it). It returns
// false when the connection is to close: idle or header timeout, the
// client went away, or shutdown.
func (fc *fconn) readHead(first bool) (int, bool) {
	fs := fc.fs
	if len(fc.in.buffered()) == 0 {
		now := time.Now()
		if !fc.setIdle(now) {
			return 0, false
		}
		wait := fs.idleTimeout()
		if first {
			wait = fs.readHeader
		}
		_ = fc.c.SetReadDeadline(now.Add(wait)) // failing, the read fails too
		k, err := fc.in.fill(fc.src(), true)
		if !fc.setActive() || k == 0 {
			_ = err // timeout, EOF or reset: the connection is done
			return 0, false
		}
		if !first {
			if n := h1.HeadEnd(fc.in.buffered(), 0); n >= 0 {
				return n, true
			}
			_ = fc.c.SetReadDeadline(time.Now().Add(fs.readHeader))
		}
	} else if n := h1.HeadEnd(fc.in.buffered(), 0); n >= 0 {
		return n, true // pipelined: the next head is here already
	} else if !first {
		_ = fc.c.SetReadDeadline(time.Now().Add(fs.readHeader))
	}
	for from := 0; ; {
		b := fc.in.buffered()
		if n := h1.HeadEnd(b, from); n >= 0 {
			return n, true
		}
		from = len(b)
		k, err := fc.in.fill(fc.src(), true)
		if err == errBufferFull {
			return -1, true
		}
		if k == 0 {
			return 0, false
		}
	}
}

// Outcomes of handling one request.
type action uint8

const (
	doNext    action = iota // read the next request
	doClose                 // close the connection
	doHandoff               // give the connection to net/http, this request first
	doParsed                // serveRaw: serve the parsed head the blocking way
)

// handle serves the request whose head is the first n buffered bytes, or
// decides that net/http must.
func (fc *fconn) handle(n int) action {
	if !fc.rq.Parse(fc.in.buffered()[:n]) {
		return doHandoff
	}
	return fc.route(n)
}

// route serves the request whose parsed head is the first n buffered
// bytes, or decides that net/http must.
func (fc *fconn) route(n int) action {
	fs, rq := fc.fs, &fc.rq
	tab := fs.p.tab.Load()
	if tab == nil || !fs.direct && bytes.HasPrefix(rq.Target, []byte("/.well-known/")) {
		return doHandoff
	}
	sni := ""
	if fc.tls != nil {
		sni = fc.tls.ServerName
	}
	svc := tab.withSNI(tab.lookupBytes(rq.Host), sni)
	if svc == nil {
		return fc.misdirected(n)
	}
	if !svc.plain || svc.sticky == stickyCookie || rq.CLen > svc.maxBody {
		return doHandoff
	}
	return fc.forward(tab, svc, n)
}

// misdirected answers 421 for a Host no service owns.
func (fc *fconn) misdirected(n int) action {
	rq := &fc.rq
	msg := append(fc.scratch[:0], "meridian: no service for host "...)
	msg = strconv.AppendQuote(msg, string(rq.Host))
	msg = append(msg, '\n')
	fc.scratch = msg
	closing := rq.Conn.Close || rq.CLen > 0 // an unread body ends the connection
	fc.in.consume(n)
	if err := fc.writePlain(421, msg, nil, closing); err != nil || fc.bw.Flush() != nil || closing {
		return doClose
	}
	return doNext
}

// writePlain buffers a short plain-text answer, with the fields net/http's
// server and plainError give it.
func (fc *fconn) writePlain(code int, msg []byte, rg *region, closing bool) error {
	_ = fc.c.SetWriteDeadline(time.Now().Add(fc.fs.idle)) // failing, the write fails too
	b := h1.AppendStatus(fc.wire[:0], code)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"...)
	if rg != nil {
		b = append(b, "X-Meridian-Region: "...)
		b = append(b, rg.name...)
		b = append(b, "\r\n"...)
	}
	b = h1.AppendDate(b)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, "\r\n"...)
	if closing {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, msg...)
	fc.wire = b
	_, err := fc.bw.Write(b)
	return err
}

// handoff gives the connection to net/http: the bytes already read are
// replayed first when replay is set.
func (fc *fconn) handoff(replay bool) {
	_ = fc.c.SetDeadline(time.Time{}) // net/http sets its own
	conn := fc.c
	if replay {
		h := &handedConn{Conn: fc.c, slot: fc.slot}
		h.scr.init(fc.c, fc.in.buffered(), fc.tls == nil, fc.fs.srv.MaxHeaderBytes, fc.fs.readHeader)
		h.scr.log, h.scr.peer = fc.fs.p.log, fc.peerIP
		conn = h
		if fc.tls != nil {
			conn = &handedTLSConn{handedConn: h, state: *fc.tls}
		}
	}
	if !replay {
		fc.fs.slots.Store(conn, fc.slot) // released when net/http reports it closed
	}
	fc.in.r, fc.in.w = 0, 0
	if !fc.fs.hand.deliver(conn) && !replay {
		if slot, ok := fc.fs.slots.LoadAndDelete(conn); ok {
			slot.(*connSlot).release() // closed by deliver
		}
	}
}

// handedConn is a connection handed to net/http mid-stream: it reads the
// bytes the fast path had buffered before the rest, all screened
// (handed_screen.go).
type handedConn struct {
	net.Conn
	scr  screener
	slot *connSlot
}

// Close closes the connection and gives its place in the connection
// counts back.
func (h *handedConn) Close() error {
	if h.scr.cut.Load() {
		lingerClose(h.Conn) // as the fast path closes after refusing a request
	}
	err := h.Conn.Close()
	h.slot.release()
	return err
}

func (h *handedConn) Read(p []byte) (int, error) { return h.scr.Read(p) }

// connState is told of net/http's state changes of the connection.
func (h *handedConn) connState(st http.ConnState) { h.scr.connState(st) }

// CloseWrite half-closes the connection, so that net/http can close it
// after an error without resetting it.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handedTLSConn is a handed TLS connection: net/http takes its
// ConnectionState for Request.TLS.
type handedTLSConn struct {
	*handedConn
	state tls.ConnectionState
}

func (h *handedTLSConn) ConnectionState() tls.ConnectionState { return h.state }
