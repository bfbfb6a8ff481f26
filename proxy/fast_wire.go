package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// What the fast path does with heads that are not in its plain form
// (h1.ParseResponse and h1.ScreenRequest hold the rules): response heads
// net/http reads although they bend RFC 9112 are parsed from a plain copy,
// and request heads whose framing is ambiguous are refused before
// anything, the fast path or net/http, acts on them.

// discardOutput drops what is buffered for the client.
func (fc *fconn) discardOutput() {
	if fc.sw.Active() {
		fc.bw.Reset(&fc.sw)
	} else {
		fc.bw.Reset(fc.c)
	}
}

// screen screens the request head at the start of the buffer before the
// connection is handed to net/http.
func (fc *fconn) screen() h1.Framing {
	b := fc.in.Buffered()
	n := h1.HeadEnd(b, 0)
	if n < 0 {
		return h1.FramingOK // a head too large for the buffer: net/http answers 431
	}
	return h1.ScreenRequest(b[:n])
}

// refuse answers a request whose framing is refused with 400 and closes:
// the bytes after its head cannot be told apart from a next request.
func (fc *fconn) refuse(why h1.Framing) action {
	fc.fs.p.log.Debug("request refused", "peer", fc.peerIP, "reason", why.String())
	msg := "meridian: " + why.String() + "\n"
	if fc.writePlain(400, []byte(msg), nil, true) == nil && fc.bw.Flush() == nil {
		lingerClose(fc.c)
	}
	return doClose
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
