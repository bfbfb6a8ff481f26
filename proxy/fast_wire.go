package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// The rules of the fast path for heads that are not in its plain form:
// response heads net/http reads although they bend RFC 9112 (bare LF line
// ends, obsolete line folding), and request heads whose framing is
// ambiguous, which are refused before anything, the fast path or
// net/http, acts on them.

// normalizeHead rewrites a message head with bare-LF line ends or folded
// lines into plain CRLF lines, appended to dst: a folded line joins the
// one before it with one space, as net/http's textproto reader joins them.
// It returns false for a head net/http refuses too: a fold right after the
// start line.
func normalizeHead(dst, head []byte) ([]byte, bool) {
	for lines := 0; len(head) > 0; lines++ {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			return dst, false
		}
		line := trimCR(head[:i])
		head = head[i+1:]
		switch {
		case len(line) == 0:
			return append(dst, "\r\n"...), true
		case line[0] != ' ' && line[0] != '\t':
			dst = append(dst, line...)
		case lines < 2:
			return dst, false // folding onto the start line
		default:
			dst = trimOWS(dst[:len(dst)-2])
			dst = append(dst, ' ')
			dst = append(dst, trimOWS(line)...)
		}
		dst = append(dst, "\r\n"...)
	}
	return dst, false
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// parseResponse parses the response head at the start of an upstream's
// buffer into fc.rs.
func (fc *fconn) parseResponse(head []byte) error {
	return parseResponseHead(&fc.rs, &fc.rhead, head)
}

// parseResponseHead parses a response head into rs. A head in plain form
// is parsed where it is; one with bare-LF line ends or folded lines, which
// net/http takes, is parsed from a plain copy in *plain.
func parseResponseHead(rs *respHead, plain *[]byte, head []byte) error {
	err := rs.parse(head)
	if err == nil {
		return nil
	}
	var ok bool
	if *plain, ok = normalizeHead((*plain)[:0], head); !ok || bytes.Equal(*plain, head) {
		return err
	}
	if err := rs.parse(*plain); err != nil {
		return err
	}
	rs.size = len(head)
	return nil
}

// discardOutput drops what is buffered for the client.
func (fc *fconn) discardOutput() {
	if fc.sw.rc != nil {
		fc.bw.Reset(&fc.sw)
	} else {
		fc.bw.Reset(fc.c)
	}
}

// reqFraming is what screenRequest found wrong with a request head.
type reqFraming uint8

const (
	framingOK       reqFraming = iota
	framingCLAndTE             // both Content-Length and Transfer-Encoding
	framingTE10                // Transfer-Encoding in an HTTP/1.0 request
	framingHostDiff            // an absolute-form target naming another host than Host
)

func (f reqFraming) String() string {
	switch f {
	case framingCLAndTE:
		return "both Content-Length and Transfer-Encoding"
	case framingTE10:
		return "Transfer-Encoding in an HTTP/1.0 request"
	case framingHostDiff:
		return "the request target names another host than Host"
	}
	return "ok"
}

// screenRequest looks at a complete request head the fast path does not
// take itself for framing a proxy must refuse (RFC 9112 §6.1, §3.2.2):
// net/http frames such a request by one of its fields and keeps the
// connection open, and a front end that frames it by the other would
// smuggle the rest of the body in as a request of its own. Lines are read
// as net/http's textproto reader reads them (bare LF ends, folded lines).
func screenRequest(head []byte) reqFraming {
	var line []byte
	line, head = splitLine(head)
	var target, proto []byte
	if i, j := bytes.IndexByte(line, ' '), bytes.LastIndexByte(line, ' '); i < j {
		target, proto = line[i+1:j], line[j+1:]
	}
	var hasCL, hasTE bool
	var host []byte
	hosts := 0
	for len(head) > 0 {
		line, head = splitLine(head)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a folded value: its field was counted
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch headerKind(name) {
		case hkContentLength:
			hasCL = true
		case hkTransferEncoding:
			hasTE = true
		case hkHost:
			host = trimOWS(value)
			hosts++
		}
	}
	switch {
	case hasTE && hasCL:
		return framingCLAndTE
	case hasTE && string(proto) == "HTTP/1.0":
		return framingTE10
	case hosts == 1 && !bytes.EqualFold(absoluteHost(target), host) && absoluteHost(target) != nil:
		return framingHostDiff
	}
	return framingOK
}

// splitLine splits the first line off b, with its CRLF or LF.
func splitLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	return trimCR(b[:i]), b[i+1:]
}

// absoluteHost is the authority of an absolute-form request target, nil
// for any other form.
func absoluteHost(target []byte) []byte {
	var rest []byte
	switch {
	case hasPrefixFoldBytes(target, "http://"):
		rest = target[len("http://"):]
	case hasPrefixFoldBytes(target, "https://"):
		rest = target[len("https://"):]
	default:
		return nil
	}
	if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := bytes.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:] // userinfo is no part of the host
	}
	return rest
}

// screen screens the request head at the start of the buffer before the
// connection is handed to net/http.
func (fc *fconn) screen() reqFraming {
	b := fc.in.buffered()
	n := headEnd(b, 0)
	if n < 0 {
		return framingOK // a head too large for the buffer: net/http answers 431
	}
	return screenRequest(b[:n])
}

// refuse answers a request whose framing is refused with 400 and closes:
// the bytes after its head cannot be told apart from a next request.
func (fc *fconn) refuse(why reqFraming) action {
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
