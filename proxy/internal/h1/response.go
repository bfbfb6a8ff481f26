package h1

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Response is a parsed response head; its slices point into the buffer
// it was parsed from (or the plain copy ParseResponse made).
type Response struct {
	Code    int
	HTTP10  bool
	Fields  []Field
	Conn    ConnTokens
	CLen    int64 // -1: no Content-Length
	Chunked bool
	CType   bool // has a Content-Type
	CEnc    bool // has a non-empty Content-Encoding
	Date    bool
	Stream  bool // an event stream or gRPC: relayed as it comes, no timeout
	Size    int  // bytes of the head

	clv []byte // the first Content-Length value
}

// BodyMode is how a response body is delimited.
type BodyMode uint8

// The body modes.
const (
	BodyNone    BodyMode = iota
	BodyLength           // Content-Length
	BodyChunked          // chunked, relayed as it is
	BodyClose            // until the upstream closes; chunked to the client
)

// ErrBadResponse is the error for a response head that does not parse.
var ErrBadResponse = errors.New("proxy: malformed response from upstream")

// Parse parses a complete response head in plain form (CRLF line ends,
// no folded lines), with the checks http.Transport makes: one status line
// of HTTP/1.0 or 1.1 with a three-digit code, well formed fields,
// Content-Length repeated only with the same value, chunked as the only
// transfer coding.
func (rs *Response) Parse(head []byte) error {
	rs.Fields, rs.Conn, rs.CLen, rs.Size, rs.clv = rs.Fields[:0], ConnTokens{}, -1, len(head), nil
	rs.Chunked, rs.CType, rs.CEnc, rs.Date, rs.Stream = false, false, false, false, false
	line, rest := nextLine(head)
	switch {
	case len(line) < 12 || line[8] != ' ' || len(line) > 12 && line[12] != ' ':
		return ErrBadResponse
	case string(line[:8]) == "HTTP/1.1":
		rs.HTTP10 = false
	case string(line[:8]) == "HTTP/1.0":
		rs.HTTP10 = true
	default:
		return ErrBadResponse
	}
	rs.Code = 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return ErrBadResponse
		}
		rs.Code = rs.Code*10 + int(c-'0')
	}
	if rs.Code < 100 {
		return ErrBadResponse
	}
	for _, c := range line[12:] { // the reason phrase
		if c < ' ' && c != '\t' || c == 0x7f {
			return ErrBadResponse
		}
	}
	te := 0
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return ErrBadResponse
		}
		f, err := ParseField(line)
		if err != nil {
			return ErrBadResponse
		}
		switch f.Kind {
		case KindContentLength:
			// Repeated, it must repeat the same value byte for byte, as
			// http.Transport requires ("0" and "00" are refused).
			n, ok := ParseLength(f.Value)
			if !ok || rs.CLen >= 0 && !bytes.Equal(f.Value, rs.clv) {
				return ErrBadResponse
			}
			rs.CLen, rs.clv = n, f.Value
		case KindTransferEncoding:
			if te++; te > 1 || !EqualFold(f.Value, "chunked") {
				return ErrBadResponse
			}
			rs.Chunked = !rs.HTTP10 // HTTP/1.0 has no transfer codings
		case KindConnection:
			if !rs.Conn.Add(f.Value) {
				return ErrBadResponse
			}
		case KindContentType:
			rs.CType = true
			rs.Stream = rs.Stream || HasPrefixFold(f.Value, "text/event-stream") ||
				HasPrefixFold(f.Value, "application/grpc")
		case KindContentEncoding:
			rs.CEnc = rs.CEnc || len(f.Value) > 0
		case KindDate:
			rs.Date = true
		}
		rs.Fields = append(rs.Fields, f)
	}
	if rs.Chunked {
		rs.CLen = -1
	}
	return nil
}

// ParseResponse parses a response head into rs. A head in plain form is
// parsed where it is; one with bare-LF line ends or folded lines, which
// net/http takes, is parsed from a plain copy in *plain.
func ParseResponse(rs *Response, plain *[]byte, head []byte) error {
	err := rs.Parse(head)
	if err == nil {
		return nil
	}
	var ok bool
	if *plain, ok = normalizeHead((*plain)[:0], head); !ok || bytes.Equal(*plain, head) {
		return err
	}
	if err := rs.Parse(*plain); err != nil {
		return err
	}
	rs.Size = len(head)
	return nil
}

// normalizeHead rewrites a message head with bare-LF line ends or folded
// lines into plain CRLF lines, appended to dst: a folded line joins the
// one before it with one space, as net/http's textproto reader joins them.
// It returns false for a head net/http refuses too, a fold right after the
// start line, and for one with a fold that continues nothing but white
// space: net/http keeps that space in the value (so "chunked " is an
// unknown transfer coding to it), and refusing is the strict choice.
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
		case len(TrimOWS(line)) == 0:
			return dst, false // a fold of white space alone
		default:
			dst = TrimOWS(dst[:len(dst)-2])
			dst = append(dst, ' ')
			dst = append(dst, TrimOWS(line)...)
		}
		dst = append(dst, "\r\n"...)
	}
	return dst, false
}

// BodyAllowed reports whether a status may carry a body.
func BodyAllowed(code int) bool { return code >= 200 && code != 204 && code != 304 }

// Mode is how the body of the response to a request (a HEAD request when
// head) is delimited.
func (rs *Response) Mode(head bool) BodyMode {
	switch {
	case head || !BodyAllowed(rs.Code) || rs.CLen == 0:
		return BodyNone
	case rs.Chunked:
		return BodyChunked
	case rs.CLen > 0:
		return BodyLength
	}
	return BodyClose
}

// Reusable reports whether the upstream keeps the connection open after
// this response.
func (rs *Response) Reusable(m BodyMode) bool {
	return m != BodyClose && !rs.Conn.Close && (!rs.HTTP10 || rs.Conn.Keep)
}

// AppendStatus appends an HTTP/1.1 status line as net/http writes it.
func AppendStatus(b []byte, code int) []byte {
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

// AppendInformational appends a 1xx response for the client: every field
// but the framing ones, as ReverseProxy relays it.
func (rs *Response) AppendInformational(b []byte) []byte {
	b = AppendStatus(b, rs.Code)
	for i := range rs.Fields {
		f := &rs.Fields[i]
		if f.Kind == KindContentLength || f.Kind == KindTransferEncoding {
			continue
		}
		b = AppendFieldLine(b, f)
	}
	return append(b, "\r\n"...)
}

// AppendHead appends the response head for the client, as ReverseProxy
// and net/http's server write it: hop-by-hop fields and those the
// Connection header lists removed, X-Meridian-Region set, framing for the
// client's connection, Date and a Content-Type sniffed from sniff when
// the upstream sent none.
func (rs *Response) AppendHead(b []byte, m BodyMode, region string, sniff []byte, closing bool) []byte {
	b = AppendStatus(b, rs.Code)
	for i := range rs.Fields {
		f := &rs.Fields[i]
		switch f.Kind {
		case KindConnection, KindHop, KindTe, KindUpgrade, KindTransferEncoding, KindContentLength, KindRegion:
			continue
		case KindTrailer:
			if m != BodyChunked {
				continue
			}
		case KindContentType:
			if rs.Code == http.StatusNotModified {
				continue
			}
		}
		if rs.Conn.N > 0 && rs.Conn.Lists(f.Name) {
			continue
		}
		b = AppendFieldLine(b, f)
	}
	if rs.CLen >= 0 && BodyAllowed(rs.Code) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, rs.CLen, 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Meridian-Region: "...)
	b = append(b, region...)
	b = append(b, "\r\n"...)
	if m == BodyChunked || m == BodyClose {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if len(sniff) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(sniff)...)
		b = append(b, "\r\n"...)
	}
	if !rs.Date {
		b = AppendDate(b)
	}
	if closing {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// AppendFieldLine appends a header field line.
func AppendFieldLine(b []byte, f *Field) []byte {
	b = append(b, f.Name...)
	b = append(b, ": "...)
	b = append(b, f.Value...)
	return append(b, "\r\n"...)
}

// httpDate is a formatted Date field, renewed every second.
type httpDate struct {
	sec  int64
	line []byte // "Date: ...\r\n"
}

var dateLine atomic.Pointer[httpDate]

// AppendDate appends a Date field line for now.
func AppendDate(b []byte) []byte {
	now := time.Now()
	d := dateLine.Load()
	if d == nil || d.sec != now.Unix() {
		line := append([]byte("Date: "), now.UTC().Format(http.TimeFormat)...)
		d = &httpDate{sec: now.Unix(), line: append(line, "\r\n"...)}
		dateLine.Store(d)
	}
	return append(b, d.line...)
}
