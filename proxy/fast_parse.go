package proxy

import (
	"bytes"
	"errors"
	"strings"
)

// Limits of the fast path's parsers. Requests beyond them go to net/http.
const (
	maxFastHeaders = 64 // header lines of one request or response
	maxConnTokens  = 8  // names listed in one message's Connection header
)

// hkind classifies the header names the fast path treats specially.
type hkind uint8

const (
	hkOther hkind = iota
	hkHost
	hkContentLength
	hkTransferEncoding
	hkConnection
	hkHop // Proxy-Connection, Keep-Alive, Proxy-Authenticate, Proxy-Authorization
	hkTe
	hkTrailer
	hkUpgrade
	hkExpect
	hkXFF
	hkXFHost
	hkXFProto
	hkForwarded
	hkUserAgent
	hkIdemKey
	hkContentType
	hkContentEncoding
	hkDate
	hkRegion // X-Meridian-Region
)

// headerKind classifies a header name, ignoring case.
func headerKind(name []byte) hkind {
	is := func(s string) bool { return equalFold(name, s) }
	switch len(name) {
	case 2:
		if is("te") {
			return hkTe
		}
	case 4:
		switch {
		case is("host"):
			return hkHost
		case is("date"):
			return hkDate
		}
	case 6:
		if is("expect") {
			return hkExpect
		}
	case 7:
		switch {
		case is("trailer"):
			return hkTrailer
		case is("upgrade"):
			return hkUpgrade
		}
	case 9:
		if is("forwarded") {
			return hkForwarded
		}
	case 10:
		switch {
		case is("connection"):
			return hkConnection
		case is("keep-alive"):
			return hkHop
		case is("user-agent"):
			return hkUserAgent
		}
	case 12:
		if is("content-type") {
			return hkContentType
		}
	case 14:
		if is("content-length") {
			return hkContentLength
		}
	case 15:
		switch {
		case is("x-forwarded-for"):
			return hkXFF
		case is("idempotency-key"):
			return hkIdemKey
		}
	case 16:
		switch {
		case is("x-forwarded-host"):
			return hkXFHost
		case is("content-encoding"):
			return hkContentEncoding
		case is("proxy-connection"):
			return hkHop
		}
	case 17:
		switch {
		case is("transfer-encoding"):
			return hkTransferEncoding
		case is("x-forwarded-proto"):
			return hkXFProto
		case is("x-meridian-region"):
			return hkRegion
		case is("x-idempotency-key"):
			return hkIdemKey
		}
	case 18:
		if is("proxy-authenticate") {
			return hkHop
		}
	case 19:
		if is("proxy-authorization") {
			return hkHop
		}
	}
	return hkOther
}

// equalFold compares ASCII b with lower-case s, ignoring b's case.
func equalFold(b []byte, s string) bool {
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

func hasPrefixFoldBytes(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && equalFold(b[:len(prefix)], prefix)
}

// field is one header line: name and value (trimmed) point into the
// message's buffer.
type field struct {
	name, value []byte
	kind        hkind
}

// connTokens are the names a Connection header lists.
type connTokens struct {
	n     int
	names [maxConnTokens][]byte
	close bool // "close" is among them
	keep  bool // "keep-alive" is among them
}

// add records the comma-separated tokens of one Connection value; false
// when there are too many.
func (t *connTokens) add(v []byte) bool {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = trimOWS(tok)
		switch {
		case len(tok) == 0:
			continue
		case equalFold(tok, "close"):
			t.close = true
		case equalFold(tok, "keep-alive"):
			t.keep = true
		}
		if t.n == maxConnTokens {
			return false
		}
		t.names[t.n] = tok
		t.n++
	}
	return true
}

// lists reports whether name is among the tokens.
func (t *connTokens) lists(name []byte) bool {
	for _, tok := range t.names[:t.n] {
		if len(tok) == len(name) && bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// headEnd returns the length of the message head at the start of b (up to
// and including the empty line), or -1 while it is incomplete. from is
// how far an earlier call already looked. Lines may end in CRLF or, as
// net/http's textproto reader also takes them, in a bare LF: a head is
// never left waiting for an end that is already there.
func headEnd(b []byte, from int) int {
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

var errMalformed = errors.New("malformed header")

// parseField parses one header line.
func parseField(line []byte) (field, error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return field{}, errMalformed
	}
	name := line[:colon]
	for _, c := range name {
		if !tokenByte(c) {
			return field{}, errMalformed
		}
	}
	value := trimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return field{}, errMalformed
		}
	}
	return field{name: name, value: value, kind: headerKind(name)}, nil
}

// parseLength parses a Content-Length value: digits only.
func parseLength(v []byte) (int64, bool) {
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

// parseHex parses a chunk size: hex digits, at most 16 of them as for
// net/http, and a size that fits an int64 with room to spare.
func parseHex(v []byte) (int64, bool) {
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
	if n > maxChunkSize {
		return 0, false
	}
	return int64(n), true
}

// maxChunkSize bounds one chunk: far beyond any real one, and small enough
// that the overhead arithmetic on it cannot overflow.
const maxChunkSize = 1 << 60

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// cleanTarget reports whether an origin-form request target reaches the
// upstream byte for byte through net/http and ReverseProxy: a path of
// characters that url.URL.EscapedPath keeps as they are, with valid
// percent escapes, and a query without control characters, semicolons or
// invalid escapes (ReverseProxy re-encodes those).
func cleanTarget(t []byte) bool {
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

// validHost reports whether a Host value is a plain name, address or
// bracketed IPv6 address with an optional port.
func validHost(h []byte) bool {
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
