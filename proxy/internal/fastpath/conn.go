package fastpath

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// ClientBufSize holds a request head; a larger head is handed to net/http,
// which serves it (or answers 431).
const ClientBufSize = 8 << 10

// Conn is one client connection on the fast path. Only its own goroutine
// touches it, but for state and idleSince, which Shutdown and ShortenIdle
// read. Its exported fields are the request's, for the Route hook.
type Conn struct {
	C      net.Conn
	srv    *Server
	TLS    *tls.ConnectionState // nil on cleartext
	Peer   netip.Addr           // unmapped, without zone
	PeerIP string               // as X-Forwarded-For names it
	In     Buf
	BW     *bufio.Writer
	sw     sockWriter // BW's writer on cleartext
	sr     sockReader // what cleartext is read through outside serveRaw

	Rq      h1.Request
	Trip    Trip   // the upstream side of the request
	Wire    []byte // the request as sent upstream: head, then body
	Scratch []byte
	Target  []byte // the client's request target, kept past the body read

	// rc is the client's file descriptor for serveRaw, nil on TLS;
	// onReadable is fc.readable, bound once per pooled Conn.
	rc         syscall.RawConn
	onReadable func(fd uintptr) bool
	// The state of serveRaw: how it ended (and the parsed head's length
	// for doParsed), whether a wait is set up, whether the connection
	// waits idle, and whether a partial head has its deadline.
	act     Action
	pending int
	armed   bool
	waiting bool
	partial bool

	// slot is its place in the connection counts.
	slot Slot

	// state says whether the connection waits idle, serves a request, or
	// was closed by Shutdown (connIdle and the rest); idleSince is when it
	// last went idle (Unix nanoseconds), for ShortenIdle.
	state     atomic.Int32
	idleSince atomic.Int64
}

var connPool = sync.Pool{New: func() any {
	fc := &Conn{In: Buf{B: make([]byte, ClientBufSize)}, BW: bufio.NewWriterSize(nil, 4<<10)}
	fc.onReadable = fc.readable
	fc.sw.step = fc.sw.writable // bound once, so that a write allocates nothing
	fc.sr.step = fc.sr.readable
	fc.Trip.Inform = fc.inform
	fc.Trip.Out.W = fc.BW
	return fc
}}

func (s *Server) newConn(c net.Conn) *Conn {
	fc := connPool.Get().(*Conn)
	fc.srv, fc.C = s, c
	fc.state.Store(connIdle)
	fc.BW.Reset(c)
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			fc.rc = rc
			fc.Trip.Client.TCP = rc // peeked at while the upstream is to answer
			fc.sw.reset(c, rc)
			fc.sr.reset(c, rc)
			fc.BW.Reset(&fc.sw)
		}
	} else if tc, ok := c.(*tls.Conn); ok {
		if sc, ok := tc.NetConn().(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				fc.Trip.Client.TCP = rc
			}
		}
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		fc.Peer = ap.Addr().Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		fc.PeerIP = host
	}
	return fc
}

// release returns the connection's buffers to the pool.
func (fc *Conn) release() {
	fc.BW.Reset(nil)
	fc.srv, fc.C, fc.TLS, fc.Peer, fc.PeerIP, fc.rc = nil, nil, nil, netip.Addr{}, "", nil
	fc.slot = nil
	fc.idleSince.Store(0)
	fc.sw.reset(nil, nil)
	fc.sr.reset(nil, nil)
	fc.In.R, fc.In.W = 0, 0
	if cap(fc.Wire) > 128<<10 {
		fc.Wire = nil // a large body's buffer is not kept
	}
	fc.Trip.Release()
	clear(fc.Rq.Fields[:])
	connPool.Put(fc)
}

// src is what the client's connection is read through outside serveRaw.
func (fc *Conn) src() io.Reader {
	if fc.sr.active() {
		return &fc.sr
	}
	return fc.C
}

// IdleTimeout is how long a connection may wait for its next request:
// Idle, or BusyIdle while Busy is set.
func (s *Server) IdleTimeout() time.Duration {
	if s.Busy != nil && s.Busy.Load() {
		return min(s.BusyIdle, s.Idle)
	}
	return s.Idle
}

// serve runs the connection until it closes or is handed to net/http;
// it returns true in the second case.
func (fc *Conn) serve() (handed bool) {
	if tc, ok := fc.C.(*tls.Conn); ok {
		h2, ok := fc.handshake(tc)
		if !ok {
			return false
		}
		if h2 && fc.srv.H2NetHTTP {
			fc.handOff(false)
			return true
		}
		if h2 {
			fc.srv.ServeH2(fc, nil)
			return false
		}
	}
	for first := true; ; first = false {
		switch fc.next(first) {
		case DoClose:
			return false
		case DoHandoff:
			if first && fc.srv.isH2Preface(fc.In.Buffered()) {
				fc.srv.ServeH2(fc, fc.In.Buffered())
				return false
			}
			if why := fc.screen(); why != h1.FramingOK {
				fc.refuse(why)
				return false
			}
			fc.handOff(true)
			return true
		}
	}
}

// next serves the next request, or on a cleartext connection after the
// first, every request up to one that needs to read its body.
func (fc *Conn) next(first bool) Action {
	if fc.rc != nil && !first {
		if act := fc.serveRaw(); act != doParsed {
			return act
		}
		return fc.srv.Route(fc, fc.pending)
	}
	n, ok := fc.readHead(first)
	switch {
	case !ok:
		return DoClose
	case n < 0:
		return DoHandoff
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
// serveRaw ends with the Action of a request that closes or hands off the
// connection, or doParsed with the head of a request whose body is still
// to be read (fc.pending long), which the blocking path serves.
func (fc *Conn) serveRaw() Action {
	fc.act, fc.armed, fc.waiting, fc.partial = DoClose, false, false, false
	if err := fc.rc.Read(fc.onReadable); err != nil {
		// The idle or header timeout, or shutdown closed the connection.
		return DoClose
	}
	return fc.act
}

// readable is serveRaw's callback: true ends the raw read with fc.act.
func (fc *Conn) readable(fd uintptr) bool {
	drained := false
	for {
		if fc.serveBuffered() {
			return true
		}
		if drained {
			return fc.arm()
		}
		if fc.In.W == len(fc.In.B) {
			if fc.In.R == 0 {
				fc.act = DoHandoff // a head too large: net/http answers it
				return true
			}
			fc.In.W = copy(fc.In.B, fc.In.B[fc.In.R:fc.In.W])
			fc.In.R = 0
		}
		space := len(fc.In.B) - fc.In.W
		n, err := readFD(fd, fc.In.B[fc.In.W:])
		switch {
		case err == unix.EAGAIN:
			if fc.armed {
				return false
			}
			return fc.arm()
		case err != nil || n <= 0:
			fc.act = DoClose // the client went away
			return true
		}
		fc.In.W += n
		fc.armed = false
		if fc.waiting {
			fc.waiting = false
			if !fc.SetActive() {
				fc.act = DoClose // shutdown closed it first
				return true
			}
		}
		drained = n < space
	}
}

// serveBuffered serves the complete request heads in the buffer; true when
// one ends the raw read.
func (fc *Conn) serveBuffered() bool {
	for {
		n := h1.HeadEnd(fc.In.Buffered(), 0)
		if n < 0 {
			return false
		}
		fc.partial = false
		rq := &fc.Rq
		if !rq.Parse(fc.In.Buffered()[:n]) {
			fc.act = DoHandoff
			return true
		}
		if rq.CLen > int64(len(fc.In.Buffered())-n) {
			fc.act, fc.pending = doParsed, n
			return true
		}
		if act := fc.srv.Route(fc, n); act != DoNext {
			fc.act = act
			return true
		}
	}
}

// arm sets up the wait for more bytes: the idle timeout between requests,
// or the header timeout from the first bytes of a head. It returns false
// to wait, or true with fc.act when the connection is to close.
func (fc *Conn) arm() bool {
	fc.armed = true
	if len(fc.In.Buffered()) > 0 {
		if !fc.partial {
			fc.partial = true
			fc.setWaitDeadline(time.Now().Add(fc.srv.ReadHeader))
		}
		return false
	}
	fc.partial = false
	now := time.Now()
	if !fc.setIdle(now) {
		fc.act = DoClose // shutting down
		return true
	}
	fc.waiting = true
	fc.setWaitDeadline(now.Add(fc.srv.IdleTimeout()))
	return false
}

// handshake runs the TLS handshake within the read-header timeout and
// reports whether the client chose HTTP/2.
func (fc *Conn) handshake(tc *tls.Conn) (h2, ok bool) {
	d := time.Now().Add(fc.srv.ReadHeader)
	_ = tc.SetDeadline(d) // a failed deadline shows as a failed handshake
	ctx, cancel := context.WithDeadline(context.Background(), d)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		answerPlainOnTLS(err)
		fc.srv.log.Debug("tls handshake failed", "peer", fc.PeerIP, "err", err)
		return false, false
	}
	st := tc.ConnectionState()
	fc.TLS = &st
	return st.NegotiatedProtocol == "h2", true
}

// readHead waits for a complete request head in the buffer and returns its
// length, or -1 when the head does not fit (net/http takes it). It returns
// false when the connection is to close: idle or header timeout, the
// client went away, or shutdown.
func (fc *Conn) readHead(first bool) (int, bool) {
	s := fc.srv
	if len(fc.In.Buffered()) == 0 {
		now := time.Now()
		if !fc.setIdle(now) {
			return 0, false
		}
		wait := s.IdleTimeout()
		if first {
			wait = s.ReadHeader
		}
		_ = fc.C.SetReadDeadline(now.Add(wait)) // failing, the read fails too
		k, err := fc.In.Fill(fc.src(), true)
		if !fc.SetActive() || k == 0 {
			_ = err // timeout, EOF or reset: the connection is done
			return 0, false
		}
		if !first {
			if n := h1.HeadEnd(fc.In.Buffered(), 0); n >= 0 {
				return n, true
			}
			_ = fc.C.SetReadDeadline(time.Now().Add(s.ReadHeader))
		}
	} else if n := h1.HeadEnd(fc.In.Buffered(), 0); n >= 0 {
		return n, true // pipelined: the next head is here already
	} else if !first {
		_ = fc.C.SetReadDeadline(time.Now().Add(s.ReadHeader))
	}
	for from := 0; ; {
		b := fc.In.Buffered()
		if n := h1.HeadEnd(b, from); n >= 0 {
			return n, true
		}
		from = len(b)
		k, err := fc.In.Fill(fc.src(), true)
		if err == errBufferFull {
			return -1, true
		}
		if k == 0 {
			return 0, false
		}
	}
}

// Action is the outcome of handling one request.
type Action uint8

// Outcomes of handling one request.
const (
	DoNext    Action = iota // read the next request
	DoClose                 // close the connection
	DoHandoff               // give the connection to net/http, this request first
	doParsed                // serveRaw: serve the parsed head the blocking way
)

// handle serves the request whose head is the first n buffered bytes, or
// decides that net/http must.
func (fc *Conn) handle(n int) Action {
	if !fc.Rq.Parse(fc.In.Buffered()[:n]) {
		return DoHandoff
	}
	return fc.srv.Route(fc, n)
}

// WritePlain buffers a short plain-text answer, with the fields net/http's
// server and the proxy's plainError give it; region, when not empty,
// names the region in X-Meridian-Region.
func (fc *Conn) WritePlain(code int, msg []byte, region string, closing bool) error {
	return fc.WriteRetryAfter(code, msg, -1, region, closing)
}

// WriteRetryAfter is WritePlain with a Retry-After field of retryAfter
// seconds (none when negative).
func (fc *Conn) WriteRetryAfter(code int, msg []byte, retryAfter int, region string, closing bool) error {
	_ = fc.C.SetWriteDeadline(time.Now().Add(fc.srv.Idle)) // failing, the write fails too
	b := h1.AppendStatus(fc.Wire[:0], code)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"...)
	if retryAfter >= 0 {
		b = append(b, "Retry-After: "...)
		b = strconv.AppendInt(b, int64(retryAfter), 10)
		b = append(b, "\r\n"...)
	}
	if region != "" {
		b = append(b, "X-Meridian-Region: "...)
		b = append(b, region...)
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
	fc.Wire = b
	_, err := fc.BW.Write(b)
	return err
}
