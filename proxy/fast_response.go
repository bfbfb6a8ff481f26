package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// respHead is a parsed upstream response head; its slices point into the
// upstream connection's buffer until the head is consumed.
type respHead struct {
	code    int
	http10  bool
	fields  []field
	conn    connTokens
	clen    int64 // -1: no Content-Length
	chunked bool
	ctype   bool // has a Content-Type
	cenc    bool // has a non-empty Content-Encoding
	date    bool
	stream  bool // an event stream or gRPC: relayed as it comes, no timeout
	size    int  // bytes of the head
}

// bodyMode is how a response body is delimited.
type bodyMode uint8

const (
	bodyNone    bodyMode = iota
	bodyLength           // Content-Length
	bodyChunked          // chunked, relayed as it is
	bodyClose            // until the upstream closes; chunked to the client
)

var (
	errBadResponse   = errors.New("proxy: malformed response from upstream")
	errHeadTooLarge  = errors.New("proxy: response head from upstream too large")
	errTooMany1xx    = errors.New("proxy: too many 1xx responses from upstream")
	errBadChunk      = errors.New("proxy: malformed chunked body from upstream")
	errSwitchRefused = errors.New("proxy: upstream switched protocols unasked")
	errClientGone    = errors.New("proxy: the client went away")
)

// parse parses a complete response head, with the checks http.Transport
// makes: one status line of HTTP/1.0 or 1.1 with a three-digit code, well
// formed fields, consistent Content-Length, chunked as the only transfer
// coding.
func (rs *respHead) parse(head []byte) error {
	rs.fields, rs.conn, rs.clen, rs.size = rs.fields[:0], connTokens{}, -1, len(head)
	rs.chunked, rs.ctype, rs.cenc, rs.date, rs.stream = false, false, false, false, false
	line, rest := nextLine(head)
	switch {
	case len(line) < 12 || line[8] != ' ' || len(line) > 12 && line[12] != ' ':
		return errBadResponse
	case string(line[:8]) == "HTTP/1.1":
		rs.http10 = false
	case string(line[:8]) == "HTTP/1.0":
		rs.http10 = true
	default:
		return errBadResponse
	}
	rs.code = 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errBadResponse
		}
		rs.code = rs.code*10 + int(c-'0')
	}
	if rs.code < 100 {
		return errBadResponse
	}
	for _, c := range line[12:] { // the reason phrase
		if c < ' ' && c != '\t' || c == 0x7f {
			return errBadResponse
		}
	}
	te := 0
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errBadResponse
		}
		f, err := parseField(line)
		if err != nil {
			return errBadResponse
		}
		switch f.kind {
		case hkContentLength:
			n, ok := parseLength(f.value)
			if !ok || rs.clen >= 0 && n != rs.clen {
				return errBadResponse
			}
			rs.clen = n
		case hkTransferEncoding:
			if te++; te > 1 || !equalFold(f.value, "chunked") {
				return errBadResponse
			}
			rs.chunked = !rs.http10 // HTTP/1.0 has no transfer codings
		case hkConnection:
			if !rs.conn.add(f.value) {
				return errBadResponse
			}
		case hkContentType:
			rs.ctype = true
			rs.stream = rs.stream || hasPrefixFoldBytes(f.value, "text/event-stream") ||
				hasPrefixFoldBytes(f.value, "application/grpc")
		case hkContentEncoding:
			rs.cenc = rs.cenc || len(f.value) > 0
		case hkDate:
			rs.date = true
		}
		rs.fields = append(rs.fields, f)
	}
	if rs.chunked {
		rs.clen = -1
	}
	return nil
}

// bodyAllowed reports whether a status may carry a body.
func bodyAllowed(code int) bool { return code >= 200 && code != 204 && code != 304 }

// mode is how the body of the response to a request is delimited.
func (rs *respHead) mode(head bool) bodyMode {
	switch {
	case head || !bodyAllowed(rs.code) || rs.clen == 0:
		return bodyNone
	case rs.chunked:
		return bodyChunked
	case rs.clen > 0:
		return bodyLength
	}
	return bodyClose
}

// reusable reports whether the upstream keeps the connection open after
// this response.
func (rs *respHead) reusable(m bodyMode) bool {
	return m != bodyClose && !rs.conn.close && (!rs.http10 || rs.conn.keep)
}

// appendStatus appends an HTTP/1.1 status line as net/http writes it.
func appendStatus(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// appendInformational appends a 1xx response for the client: every field
// but the framing ones, as ReverseProxy relays it.
func (rs *respHead) appendInformational(b []byte) []byte {
	b = appendStatus(b, rs.code)
	for i := range rs.fields {
		f := &rs.fields[i]
		if f.kind == hkContentLength || f.kind == hkTransferEncoding {
			continue
		}
		b = appendFieldLine(b, f)
	}
	return append(b, "\r\n"...)
}

// appendHead appends the response head for the client, as ReverseProxy
// and net/http's server write it: hop-by-hop fields and those the
// Connection header lists removed, X-Meridian-Region set, framing for the
// client's connection, Date and a sniffed Content-Type when the upstream
// sent none.
func (rs *respHead) appendHead(b []byte, m bodyMode, region string, sniff []byte, closing bool) []byte {
	b = appendStatus(b, rs.code)
	for i := range rs.fields {
		f := &rs.fields[i]
		switch f.kind {
		case hkConnection, hkHop, hkTe, hkUpgrade, hkTransferEncoding, hkContentLength, hkRegion:
			continue
		case hkTrailer:
			if m != bodyChunked {
				continue
			}
		case hkContentType:
			if rs.code == http.StatusNotModified {
				continue
			}
		}
		if rs.conn.n > 0 && rs.conn.lists(f.name) {
			continue
		}
		b = appendFieldLine(b, f)
	}
	if rs.clen >= 0 && bodyAllowed(rs.code) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, rs.clen, 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Meridian-Region: "...)
	b = append(b, region...)
	b = append(b, "\r\n"...)
	if m == bodyChunked || m == bodyClose {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if len(sniff) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(sniff)...)
		b = append(b, "\r\n"...)
	}
	if !rs.date {
		b = appendDate(b)
	}
	if closing {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

func appendFieldLine(b []byte, f *field) []byte {
	b = append(b, f.name...)
	b = append(b, ": "...)
	b = append(b, f.value...)
	return append(b, "\r\n"...)
}

// httpDate is a formatted Date field, renewed every second.
type httpDate struct {
	sec  int64
	line []byte // "Date: ...\r\n"
}

var dateLine atomic.Pointer[httpDate]

func appendDate(b []byte) []byte {
	now := time.Now()
	d := dateLine.Load()
	if d == nil || d.sec != now.Unix() {
		line := append([]byte("Date: "), now.UTC().Format(http.TimeFormat)...)
		d = &httpDate{sec: now.Unix(), line: append(line, "\r\n"...)}
		dateLine.Store(d)
	}
	return append(b, d.line...)
}

// relayLength copies n body bytes from the upstream to the client. A
// stream is flushed whenever the upstream has nothing more buffered; a
// large body that is not a stream is spliced once the buffer is empty.
func (fc *fconn) relayLength(u *upConn, n int64, stream bool) error {
	for n > 0 {
		b := u.in.buffered()
		if len(b) == 0 {
			if !stream {
				_, err := io.CopyN(fc.bw, u.c, n)
				return err
			}
			if err := fc.bw.Flush(); err != nil {
				return err
			}
			if k, err := u.in.fill(u.src(), true); k == 0 {
				return eofIsUnexpected(err)
			}
			continue
		}
		if int64(len(b)) > n {
			b = b[:n]
		}
		if _, err := fc.bw.Write(b); err != nil {
			return err
		}
		u.in.consume(len(b))
		n -= int64(len(b))
	}
	return nil
}

// maxChunkLine bounds a chunk-size or trailer line with its CRLF, and all
// the trailer lines together, as net/http's reader does.
const maxChunkLine = 4 << 10

// maxChunkExcess bounds the chunked framing's overhead beyond what its
// data justifies, as net/http's chunked reader does: 16 bytes per chunk
// and twice its size are free.
const maxChunkExcess = 16 << 10

// relayChunked relays a chunked body, checked line by line as net/http's
// chunked reader checks it (CRLF line ends only, no CR inside a line, a
// hex size, CRLF after the data, bounded overhead and trailers) and framed
// anew for the client as net/http's server frames it: sizes without
// extensions, the data, then the trailer fields. Nothing it refuses
// reaches the client. It flushes whenever the upstream has nothing more
// buffered.
func (fc *fconn) relayChunked(u *upConn) error {
	var excess int64
	for {
		line, err := fc.chunkLine(u)
		if err != nil {
			return err
		}
		size := line
		for len(size) > 0 && (size[len(size)-1] == ' ' || size[len(size)-1] == '\t') {
			size = size[:len(size)-1]
		}
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i] // an extension: dropped, as net/http drops it
		}
		n, ok := parseHex(size)
		if !ok {
			return errBadChunk
		}
		if excess = max(excess+int64(len(line))+2-16-2*n, 0); excess > maxChunkExcess {
			return errBadChunk
		}
		u.in.consume(len(line) + 2)
		if _, err := fc.bw.Write(append(strconv.AppendInt(fc.sizeBuf[:0], n, 16), '\r', '\n')); err != nil {
			return err
		}
		if n == 0 {
			return fc.relayTrailers(u)
		}
		if err := fc.relayLength(u, n, true); err != nil {
			return err
		}
		// The client has each chunk's data as soon as it is relayed, as
		// ReverseProxy flushes a body of unknown length.
		if err := fc.bw.Flush(); err != nil {
			return err
		}
		for len(u.in.buffered()) < 2 {
			if err := fc.bw.Flush(); err != nil {
				return err
			}
			if k, err := u.in.fill(u.src(), true); k == 0 {
				return eofIsUnexpected(err)
			}
		}
		if b := u.in.buffered(); b[0] != '\r' || b[1] != '\n' {
			return errBadChunk
		}
		u.in.consume(2)
		if _, err := fc.bw.WriteString("\r\n"); err != nil {
			return err
		}
	}
}

// relayTrailers relays the trailer fields, each checked as a header field
// and those net/http's server leaves out of trailers dropped, and the
// final empty line.
func (fc *fconn) relayTrailers(u *upConn) error {
	for total := 0; ; {
		line, err := fc.chunkLine(u)
		if err != nil {
			return err
		}
		if total += len(line) + 2; total > maxChunkLine {
			return errBadChunk
		}
		if len(line) == 0 {
			u.in.consume(2)
			_, err := fc.bw.WriteString("\r\n")
			return err
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errBadChunk // a folded trailer
		}
		f, err := parseField(line)
		if err != nil {
			return errBadChunk
		}
		if allowedTrailer(&f) {
			fc.scratch = appendFieldLine(fc.scratch[:0], &f)
			if _, err := fc.bw.Write(fc.scratch); err != nil {
				return err
			}
		}
		u.in.consume(len(line) + 2)
	}
}

// allowedTrailer reports whether a field may be sent as a trailer, as
// golang.org/x/net/http/httpguts.ValidTrailerHeader decides for net/http's
// server.
func allowedTrailer(f *field) bool {
	switch f.kind {
	case hkOther, hkUserAgent, hkIdemKey, hkXFF, hkXFHost, hkXFProto, hkForwarded, hkDate, hkRegion:
	default:
		return false
	}
	for _, name := range [...]string{"authorization", "cache-control", "content-range", "max-forwards",
		"pragma", "range", "realm", "www-authenticate"} {
		if equalFold(f.name, name) {
			return false
		}
	}
	return true
}

// chunkLine returns the next line of a chunked body without its CRLF,
// still in the upstream buffer (the caller consumes it and the CRLF). A
// line that ends in a bare LF, holds a CR, or is too long is refused.
// Before waiting for the upstream it flushes what the client has been
// given.
func (fc *fconn) chunkLine(u *upConn) ([]byte, error) {
	for {
		b := u.in.buffered()
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if i == 0 || i+1 > maxChunkLine || bytes.IndexByte(b[:i], '\r') != i-1 {
				return nil, errBadChunk
			}
			return b[:i-1], nil
		}
		if len(b) >= maxChunkLine {
			return nil, errBadChunk
		}
		if err := fc.bw.Flush(); err != nil {
			return nil, err
		}
		if k, err := u.in.fill(u.src(), true); k == 0 {
			return nil, eofIsUnexpected(err)
		}
	}
}

// relayUntilClose relays a body that ends when the upstream closes,
// chunked for the client (as net/http's server does), flushing as it
// comes.
func (fc *fconn) relayUntilClose(u *upConn) error {
	for {
		if b := u.in.buffered(); len(b) > 0 {
			line := strconv.AppendInt(fc.sizeBuf[:0], int64(len(b)), 16)
			line = append(line, "\r\n"...)
			if _, err := fc.bw.Write(line); err != nil {
				return err
			}
			if _, err := fc.bw.Write(b); err != nil {
				return err
			}
			if _, err := fc.bw.WriteString("\r\n"); err != nil {
				return err
			}
			u.in.consume(len(b))
		}
		if err := fc.bw.Flush(); err != nil {
			return err
		}
		k, err := u.in.fill(u.src(), true)
		switch {
		case k > 0:
		case err == io.EOF:
			_, err = fc.bw.WriteString("0\r\n\r\n")
			return err
		default:
			return eofIsUnexpected(err)
		}
	}
}

// eofIsUnexpected turns the end of a body that should have gone on into an
// error (and a read that returned nothing without error into one too).
func eofIsUnexpected(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
