package h1

import (
	"bytes"
	"errors"
	"strings"
)

// Limits of the parsers. Requests beyond them go to net/http.
const (
	MaxHeaders    = 64 // header lines of one request or response
	MaxConnTokens = 8  // names listed in one message's Connection header
)

// Kind classifies the header names the proxy treats specially.
type Kind uint8

// The header kinds.
const (
	KindOther Kind = iota
	KindHost
	KindContentLength
	KindTransferEncoding
	KindConnection
	KindHop // Proxy-Connection, Keep-Alive, Proxy-Authenticate, Proxy-Authorization
	KindTe
	KindTrailer
	KindUpgrade
	KindExpect
	KindXFF
	KindXFHost
	KindXFProto
	KindForwarded
	KindUserAgent
	KindIdemKey
	KindContentType
	KindContentEncoding
	KindDate
	KindRegion // X-Meridian-Region
)

// HeaderKind classifies a header name, ignoring case.
func HeaderKind(name []byte) Kind {
	is := func(s string) bool { return EqualFold(name, s) }
	switch len(name) {
	case 2:
		if is("te") {
			return KindTe
		}
	case 4:
		switch {
		case is("host"):
			return KindHost
		case is("date"):
			return KindDate
		}
	case 6:
		if is("expect") {
			return KindExpect
		}
	case 7:
		switch {
		case is("trailer"):
			return KindTrailer
		case is("upgrade"):
			return KindUpgrade
		}
	case 9:
		if is("forwarded") {
			return KindForwarded
		}
	case 10:
		switch {
		case is("connection"):
			return KindConnection
		case is("keep-alive"):
			return KindHop
		case is("user-agent"):
			return KindUserAgent
		}
	case 12:
		if is("content-type") {
			return KindContentType
		}
	case 14:
		if is("content-length") {
			return KindContentLength
		}
	case 15:
		switch {
		case is("x-forwarded-for"):
			return KindXFF
		case is("idempotency-key"):
			return KindIdemKey
		}
	case 16:
		switch {
		case is("x-forwarded-host"):
			return KindXFHost
		case is("content-encoding"):
			return KindContentEncoding
		case is("proxy-connection"):
			return KindHop
		}
	case 17:
		switch {
		case is("transfer-encoding"):
			return KindTransferEncoding
		case is("x-forwarded-proto"):
			return KindXFProto
		case is("x-meridian-region"):
			return KindRegion
		case is("x-idempotency-key"):
			return KindIdemKey
		}
	case 18:
		if is("proxy-authenticate") {
			return KindHop
		}
	case 19:
		if is("proxy-authorization") {
			return KindHop
		}
	}
	return KindOther
}

// EqualFold compares ASCII b with lower-case s, ignoring b's case.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// HasPrefixFold reports whether b begins with lower-case prefix, ignoring
// b's case.
func HasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && EqualFold(b[:len(prefix)], prefix)
}

// Field is one header line: Name and Value (trimmed) point into the
// message's buffer.
type Field struct {
	Name, Value []byte
	Kind        Kind
}

// ConnTokens are the names a Connection header lists.
type ConnTokens struct {
	N     int
	Names [MaxConnTokens][]byte
	Close bool // "close" is among them
	Keep  bool // "keep-alive" is among them
}

// Add records the comma-separated tokens of one Connection value; false
// when there are too many.
func (t *ConnTokens) Add(v []byte) bool {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = TrimOWS(tok)
		switch {
		case len(tok) == 0:
			continue
		case EqualFold(tok, "close"):
			t.Close = true
		case EqualFold(tok, "keep-alive"):
			t.Keep = true
		}
		if t.N == MaxConnTokens {
			return false
		}
		t.Names[t.N] = tok
		t.N++
	}
	return true
}

// Lists reports whether name is among the tokens.
func (t *ConnTokens) Lists(name []byte) bool {
	for _, tok := range t.Names[:t.N] {
		if len(tok) == len(name) && bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

// TrimOWS trims optional white space (spaces and tabs) off both ends.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// HeadEnd returns the length of the message head at the start of b (up to
// and including the empty line), or -1 while it is incomplete. from is
// how far an earlier call already looked. Lines may end in CRLF or, as
// net/http's textproto reader also takes them, in a bare LF: a head is
// never left waiting for an end that is already there.
func HeadEnd(b []byte, from int) int {
	i := max(from-2, 0) // the end is "\n\n" or "\n\r\n"
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// nextLine splits the first CRLF-terminated line off b.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+2:]
}

// splitLine splits the first line off b, with its CRLF or LF.
func splitLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	return trimCR(b[:i]), b[i+1:]
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// ErrMalformed is ParseField's error.
var ErrMalformed = errors.New("malformed header")

// ParseField parses one header line.
func ParseField(line []byte) (Field, error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return Field{}, ErrMalformed
	}
	name := line[:colon]
	for _, c := range name {
		if !TokenByte(c) {
			return Field{}, ErrMalformed
		}
	}
	value := TrimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return Field{}, ErrMalformed
		}
	}
	return Field{Name: name, Value: value, Kind: HeaderKind(name)}, nil
}

// ParseLength parses a Content-Length value: digits only.
func ParseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ParseHex parses a chunk size: hex digits, at most 16 of them as for
// net/http, and a size that fits an int64 with room to spare.
func ParseHex(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	if n > MaxChunkSize {
		return 0, false
	}
	return int64(n), true
}

// MaxChunkSize bounds one chunk: far beyond any real one, and small enough
// that the overhead arithmetic on it cannot overflow.
const MaxChunkSize = 1 << 60

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// CleanTarget reports whether an origin-form request target reaches the
// upstream byte for byte through net/http and ReverseProxy: a path of
// characters that url.URL.EscapedPath keeps as they are, with valid
// percent escapes, and a query without control characters, semicolons or
// invalid escapes (ReverseProxy re-encodes those).
func CleanTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	i := 0
	for ; i < len(t) && t[i] != '?'; i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/[]", c) >= 0:
		case c == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	for i++; i < len(t); i++ {
		c := t[i]
		switch {
		case c <= ' ' || c == 0x7f || c == ';' || c == '#':
			return false
		case c == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// ValidHost reports whether a Host value is a plain name, address or
// bracketed IPv6 address with an optional port.
func ValidHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, c := range h {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// TokenByte reports whether c may appear in an RFC 7230 token.
func TokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
