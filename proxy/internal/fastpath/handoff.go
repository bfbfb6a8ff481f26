package fastpath

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Handoff is the net.Listener an *http.Server serves: it yields the
// connections the fast path hands over.
type Handoff struct {
	addr    net.Addr
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	onClose func()
}

var _ net.Listener = (*Handoff)(nil)

// NewHandoff returns a hand-off listener with address addr; onClose runs
// once when it closes.
func NewHandoff(addr net.Addr, onClose func()) *Handoff {
	return &Handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{}), onClose: onClose}
}

// Accept returns the next connection handed over.
func (h *Handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener; Deliver fails from then on.
func (h *Handoff) Close() error {
	h.once.Do(func() {
		close(h.done)
		h.onClose()
	})
	return nil
}

// Addr is the address of the listener the connections came from.
func (h *Handoff) Addr() net.Addr { return h.addr }

// Deliver gives c to the server; once the listener is closed it closes c
// instead.
func (h *Handoff) Deliver(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		_ = c.Close() // nobody will serve it
		return false
	}
}

// handoff gives the connection to net/http: the bytes already read are
// replayed first when replay is set.
func (fc *Conn) handOff(replay bool) {
	_ = fc.C.SetDeadline(time.Time{}) // net/http sets its own
	conn := fc.C
	if replay {
		h := &handedConn{Conn: fc.C, slot: fc.slot}
		h.scr.init(fc.C, fc.In.Buffered(), fc.TLS == nil, fc.srv.MaxHeaderBytes, fc.srv.ReadHeader)
		h.scr.log, h.scr.peer = fc.srv.log, fc.PeerIP
		conn = h
		if fc.TLS != nil {
			conn = &handedTLSConn{handedConn: h, state: *fc.TLS}
		}
	}
	if !replay {
		fc.srv.slots.Store(conn, fc.slot) // released when net/http reports it closed
	}
	fc.In.R, fc.In.W = 0, 0
	if !fc.srv.Hand.Deliver(conn) && !replay {
		if slot, ok := fc.srv.slots.LoadAndDelete(conn); ok {
			slot.(Slot).Release() // closed by deliver
		}
	}
}

// handedConn is a connection handed to net/http mid-stream: it reads the
// bytes the fast path had buffered before the rest, all screened
// (screener.go).
type handedConn struct {
	net.Conn
	scr  screener
	slot Slot
}

// Close closes the connection and gives its place in the connection
// counts back.
func (h *handedConn) Close() error {
	if h.scr.cut.Load() {
		lingerClose(h.Conn) // as the fast path closes after refusing a request
	}
	err := h.Conn.Close()
	h.slot.Release()
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

var _ net.Conn = (*handedConn)(nil)

// ConnState is to be called by the *http.Server's ConnState hook: a
// handed connection's screener follows net/http's state changes, and a
// connection handed as it is gives its slot back once net/http closed it.
func (s *Server) ConnState(c net.Conn, st http.ConnState) {
	if h, ok := c.(interface{ connState(http.ConnState) }); ok {
		h.connState(st) // a handed connection's screener follows it
	}
	if st == http.StateClosed {
		if slot, ok := s.slots.LoadAndDelete(c); ok {
			slot.(Slot).Release()
		}
	}
}

// lingerDelay is how long a connection closed after an error answer keeps
// reading what the client still sends, so that the close does not reset
// the connection before the client has read the answer (net/http waits as
// long).
const lingerDelay = 500 * time.Millisecond

// lingerClose half-closes c and reads what is left for up to lingerDelay;
// the caller closes it.
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerDelay)) // failing, the read below fails at once
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 256<<10))
}

// httpOnTLSPort is net/http's answer to plain HTTP sent to a TLS port.
const httpOnTLSPort = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// answerPlainOnTLS answers a failed handshake that was plain HTTP the way
// net/http does.
func answerPlainOnTLS(err error) {
	var re tls.RecordHeaderError
	if !errors.As(err, &re) || re.Conn == nil || !looksLikeHTTP(re.RecordHeader) {
		return
	}
	_ = re.Conn.SetWriteDeadline(time.Now().Add(lingerDelay)) // failing, the write fails too
	if _, err := io.WriteString(re.Conn, httpOnTLSPort); err == nil {
		lingerClose(re.Conn)
	}
}

// looksLikeHTTP is net/http's test of a TLS record header for a request
// line.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}
