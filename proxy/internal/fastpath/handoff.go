package fastpath

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
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

// lingerDelay is how long a connection closed after an error answer keeps
// reading what the client still sends, so that the close does not reset
// the connection before the client has read the answer (net/http waits as
// long).
const lingerDelay = 500 * time.Millisecond

// LingerClose half-closes c and reads what is left for up to lingerDelay;
// the caller closes it.
func LingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(lingerDelay)) // failing, the read below fails at once
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 256<<10))
}

// httpOnTLSPort is net/http's answer to plain HTTP sent to a TLS port.
const httpOnTLSPort = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// AnswerPlainOnTLS answers a failed handshake that was plain HTTP the way
// net/http does.
func AnswerPlainOnTLS(err error) {
	var re tls.RecordHeaderError
	if !errors.As(err, &re) || re.Conn == nil || !looksLikeHTTP(re.RecordHeader) {
		return
	}
	_ = re.Conn.SetWriteDeadline(time.Now().Add(lingerDelay)) // failing, the write fails too
	if _, err := io.WriteString(re.Conn, httpOnTLSPort); err == nil {
		LingerClose(re.Conn)
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
