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
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// clientBufSize holds a request head; a larger head is handed to net/http,
// which serves it (or answers 431).
const clientBufSize = 8 << 10

// fconn is one client connection on the fast path. Only its own
// goroutine touches it, but for the engine's state, which shutdown reads.
type fconn struct {
	fastpath.Conn // the connection, as the engine tracks it
	fs            *fastServer
	tls           *tls.ConnectionState // nil on cleartext
	peer          netip.Addr           // unmapped, without zone
	peerIP        string               // as X-Forwarded-For names it
	in            fastpath.Buf
	bw            *bufio.Writer
	sw            fastpath.SockWriter // bw's writer on cleartext
	sr            fastpath.SockReader // what cleartext is read through outside serveRaw

	rq      h1.Request
	trip    fastpath.Trip // the upstream side of the request
	wire    []byte        // the request as sent upstream: head, then body
	scratch []byte
	target  []byte // the client's request target, kept past the body read

	// rc is the client's file descriptor for serveRaw, nil on TLS;
	// onReadable is fc.readable, bound once per pooled fconn.
	rc         syscall.RawConn
	onReadable func(fd uintptr) bool
	// The state of serveRaw: how it ended (and the parsed head's length
	// for doParsed), whether a wait is set up, whether the connection
	// waits idle, and whether a partial head has its deadline.
	act     action
	pending int
	armed   bool
	waiting bool
	partial bool

	// slot is its place in the connection counts.
	slot *connSlot
}

var fconnPool = sync.Pool{New: func() any {
	fc := &fconn{in: fastpath.Buf{B: make([]byte, clientBufSize)}, bw: bufio.NewWriterSize(nil, 4<<10)}
	fc.onReadable = fc.readable
	fc.trip.Inform = fc.inform
	fc.trip.Out.W = fc.bw
	return fc
}}

func newFconn(fs *fastServer, c net.Conn) *fconn {
	fc := fconnPool.Get().(*fconn)
	fc.fs = fs
	fc.Reset(fs.eng, c)
	fc.bw.Reset(c)
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			fc.rc = rc
			fc.trip.Client.TCP = rc // peeked at while the upstream is to answer
			fc.sw.Reset(c, rc)
			fc.sr.Reset(c, rc)
			fc.bw.Reset(&fc.sw)
		}
	} else if tc, ok := c.(*tls.Conn); ok {
		if sc, ok := tc.NetConn().(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				fc.trip.Client.TCP = rc
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
	fc.Reset(nil, nil)
	fc.fs, fc.tls, fc.peer, fc.peerIP, fc.rc = nil, nil, netip.Addr{}, "", nil
	fc.slot = nil
	fc.sw.Reset(nil, nil)
	fc.sr.Reset(nil, nil)
	fc.in.R, fc.in.W = 0, 0
	if cap(fc.wire) > 128<<10 {
		fc.wire = nil // a large body's buffer is not kept
	}
	fc.trip.Release()
	clear(fc.rq.Fields[:])
	fconnPool.Put(fc)
}

// src is what the client's connection is read through outside serveRaw.
func (fc *fconn) src() io.Reader {
	if fc.sr.Active() {
		return &fc.sr
	}
	return fc.C
}

// idleTimeout is how long the connection may wait for its next request.
func (fs *fastServer) idleTimeout() time.Duration { return fs.p.conns.idleTimeout(fs.idle) }

// serve runs the connection until it closes or is handed to net/http;
// it returns true in the second case.
func (fc *fconn) serve() (handed bool) {
	if tc, ok := fc.C.(*tls.Conn); ok {
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
			if first && isH2Preface(fc.in.Buffered()) {
				fc.serveH2(fc.in.Buffered())
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
		if fc.in.W == len(fc.in.B) {
			if fc.in.R == 0 {
				fc.act = doHandoff // a head too large: net/http answers it
				return true
			}
			fc.in.W = copy(fc.in.B, fc.in.B[fc.in.R:fc.in.W])
			fc.in.R = 0
		}
		space := len(fc.in.B) - fc.in.W
		n, err := fastpath.ReadFD(fd, fc.in.B[fc.in.W:])
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
		fc.in.W += n
		fc.armed = false
		if fc.waiting {
			fc.waiting = false
			if !fc.SetActive() {
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
		n := h1.HeadEnd(fc.in.Buffered(), 0)
		if n < 0 {
			return false
		}
		fc.partial = false
		rq := &fc.rq
		if !rq.Parse(fc.in.Buffered()[:n]) {
			fc.act = doHandoff
			return true
		}
		if rq.CLen > int64(len(fc.in.Buffered())-n) {
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
	if len(fc.in.Buffered()) > 0 {
		if !fc.partial {
			fc.partial = true
			fc.SetWaitDeadline(time.Now().Add(fc.fs.readHeader))
		}
		return false
	}
	fc.partial = false
	now := time.Now()
	if !fc.SetIdle(now) {
		fc.act = doClose // shutting down
		return true
	}
	fc.waiting = true
	fc.SetWaitDeadline(now.Add(fc.fs.idleTimeout()))
	return false
}

// handshake runs the TLS handshake within the read-header timeout and
// reports whether the client chose HTTP/2.
func (fc *fconn) handshake(tc *tls.Conn) (h2, ok bool) {
	d := time.Now().Add(fc.fs.readHeader)
	_ = tc.SetDeadline(d) // a failed deadline shows as a failed handshake
	ctx, cancel := context.WithDeadline(context.Background(), d)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		fastpath.AnswerPlainOnTLS(err)
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
	if len(fc.in.Buffered()) == 0 {
		now := time.Now()
		if !fc.SetIdle(now) {
			return 0, false
		}
		wait := fs.idleTimeout()
		if first {
			wait = fs.readHeader
		}
		_ = fc.C.SetReadDeadline(now.Add(wait)) // failing, the read fails too
		k, err := fc.in.Fill(fc.src(), true)
		if !fc.SetActive() || k == 0 {
			_ = err // timeout, EOF or reset: the connection is done
			return 0, false
		}
		if !first {
			if n := h1.HeadEnd(fc.in.Buffered(), 0); n >= 0 {
				return n, true
			}
			_ = fc.C.SetReadDeadline(time.Now().Add(fs.readHeader))
		}
	} else if n := h1.HeadEnd(fc.in.Buffered(), 0); n >= 0 {
		return n, true // pipelined: the next head is here already
	} else if !first {
		_ = fc.C.SetReadDeadline(time.Now().Add(fs.readHeader))
	}
	for from := 0; ; {
		b := fc.in.Buffered()
		if n := h1.HeadEnd(b, from); n >= 0 {
			return n, true
		}
		from = len(b)
		k, err := fc.in.Fill(fc.src(), true)
		if err == fastpath.ErrBufferFull {
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
	if !fc.rq.Parse(fc.in.Buffered()[:n]) {
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
	fc.in.Consume(n)
	if err := fc.writePlain(421, msg, nil, closing); err != nil || fc.bw.Flush() != nil || closing {
		return doClose
	}
	return doNext
}

// writePlain buffers a short plain-text answer, with the fields net/http's
// server and plainError give it.
func (fc *fconn) writePlain(code int, msg []byte, rg *region, closing bool) error {
	_ = fc.C.SetWriteDeadline(time.Now().Add(fc.fs.idle)) // failing, the write fails too
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
	_ = fc.C.SetDeadline(time.Time{}) // net/http sets its own
	conn := fc.C
	if replay {
		h := &handedConn{Conn: fc.C, slot: fc.slot}
		h.scr.init(fc.C, fc.in.Buffered(), fc.tls == nil, fc.fs.srv.MaxHeaderBytes, fc.fs.readHeader)
		h.scr.log, h.scr.peer = fc.fs.p.log, fc.peerIP
		conn = h
		if fc.tls != nil {
			conn = &handedTLSConn{handedConn: h, state: *fc.tls}
		}
	}
	if !replay {
		fc.fs.slots.Store(conn, fc.slot) // released when net/http reports it closed
	}
	fc.in.R, fc.in.W = 0, 0
	if !fc.fs.hand.Deliver(conn) && !replay {
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
		fastpath.LingerClose(h.Conn) // as the fast path closes after refusing a request
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
