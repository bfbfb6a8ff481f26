package proxy

import (
	"net/url"
	"strconv"
)

// method is a request method the fast path forwards.
type method uint8

const (
	methodOther method = iota
	methodGet
	methodHead
	methodPost
	methodPut
	methodDelete
	methodOptions
	methodPatch
)

func parseMethod(b []byte) method {
	switch string(b) {
	case "GET":
		return methodGet
	case "HEAD":
		return methodHead
	case "POST":
		return methodPost
	case "PUT":
		return methodPut
	case "DELETE":
		return methodDelete
	case "OPTIONS":
		return methodOptions
	case "PATCH":
		return methodPatch
	}
	return methodOther
}

// idempotent is isIdempotent for the fast path's methods.
func (m method) idempotent() bool {
	switch m {
	case methodGet, methodHead, methodOptions, methodPut, methodDelete:
		return true
	}
	return false
}

// reqHead is a parsed request head. Its slices point into the client
// connection's buffer and are valid until the body is read.
type reqHead struct {
	method               method
	methodName           []byte
	target, host, ua     []byte
	fields               [maxFastHeaders]field
	n                    int
	conn                 connTokens
	clen                 int64
	hasCL                bool
	teTrailers           bool
	idemKey              bool
	xff, xfHost, xfProto bool
	fwd                  bool
}

// parse parses a complete request head (with its empty line). It returns
// false for anything the fast path leaves to net/http: another protocol
// or version, another method, an unusual target, an upgrade, an
// expectation, a request body that is not sized by Content-Length, or any
// header that does not parse cleanly.
func (rq *reqHead) parse(head []byte) bool {
	rq.n, rq.conn = 0, connTokens{}
	rq.host, rq.ua, rq.clen, rq.hasCL = nil, nil, 0, false
	rq.teTrailers, rq.idemKey, rq.xff, rq.xfHost, rq.xfProto, rq.fwd = false, false, false, false, false, false

	line, rest := nextLine(head)
	sp := indexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	rq.methodName, line = line[:sp], line[sp+1:]
	if rq.method = parseMethod(rq.methodName); rq.method == methodOther {
		return false
	}
	if sp = indexByte(line, ' '); sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return false
	}
	if rq.target = line[:sp]; !cleanTarget(rq.target) {
		return false
	}
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' || rq.n == maxFastHeaders {
			return false // obsolete line folding, or too many fields
		}
		f, err := parseField(line)
		if err != nil || !rq.note(&f) {
			return false
		}
		rq.fields[rq.n] = f
		rq.n++
	}
	if rq.host == nil {
		return false
	}
	for _, tok := range rq.conn.names[:rq.conn.n] {
		switch headerKind(tok) {
		case hkOther, hkHop, hkConnection, hkIdemKey, hkContentType, hkContentEncoding, hkDate, hkRegion:
		default:
			return false // a Connection header naming what the proxy sets itself
		}
	}
	return true
}

// note takes what the proxy needs from one header field; false when the
// request is not for the fast path.
func (rq *reqHead) note(f *field) bool {
	switch f.kind {
	case hkHost:
		if rq.host != nil || !validHost(f.value) {
			return false
		}
		rq.host = f.value
	case hkContentLength:
		n, ok := parseLength(f.value)
		if rq.hasCL || !ok {
			return false
		}
		rq.clen, rq.hasCL = n, true
	case hkTransferEncoding, hkUpgrade, hkExpect:
		return false
	case hkConnection:
		return rq.conn.add(f.value)
	case hkTe:
		rq.teTrailers = rq.teTrailers || listsToken(f.value, "trailers")
	case hkUserAgent:
		if rq.ua == nil {
			rq.ua = f.value
		}
	case hkIdemKey:
		rq.idemKey = true
	case hkXFF:
		rq.xff = true
	case hkXFHost:
		rq.xfHost = true
	case hkXFProto:
		rq.xfProto = true
	case hkForwarded:
		rq.fwd = true
	}
	return true
}

// listsToken reports whether a comma-separated value holds token (lower
// case), ignoring case.
func listsToken(v []byte, token string) bool {
	for len(v) > 0 {
		var tok []byte
		if i := indexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		if equalFold(trimOWS(tok), token) {
			return true
		}
	}
	return false
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// appendRequest appends the request head sent upstream, the way
// ReverseProxy with the proxy's rewrite and http.Transport would write it:
// the client's Host, hop-by-hop fields and the fields the Connection
// header lists removed, forwarding fields replaced (or, from a trusted
// proxy, extended), Content-Length from the body read.
func (fc *fconn) appendRequest(b []byte, ex *exchange, rq *reqHead) []byte {
	b = append(b, rq.methodName...)
	b = append(b, ' ')
	b = appendTarget(b, ex, rq.target)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, rq.host...)
	b = append(b, "\r\n"...)
	if len(rq.ua) > 0 {
		b = append(b, "User-Agent: "...)
		b = append(b, rq.ua...)
		b = append(b, "\r\n"...)
	}
	// As http.Transport: always for the methods that usually carry a body.
	if rq.clen > 0 || rq.method == methodPost || rq.method == methodPut || rq.method == methodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, rq.clen, 10)
		b = append(b, "\r\n"...)
	}
	for i := range rq.fields[:rq.n] {
		f := &rq.fields[i]
		switch f.kind {
		case hkHost, hkContentLength, hkConnection, hkHop, hkTe, hkTrailer, hkUserAgent,
			hkXFF, hkXFHost, hkXFProto, hkForwarded:
			continue
		}
		if rq.conn.n > 0 && rq.conn.lists(f.name) {
			continue
		}
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	if rq.teTrailers {
		b = append(b, "Te: trailers\r\n"...)
	}

	b = append(b, "X-Forwarded-For: "...)
	if ex.trusted && rq.xff {
		b = rq.appendValues(b, hkXFF, ", ")
		b = append(b, ", "...)
	}
	b = append(b, fc.peerIP...)
	b = append(b, "\r\n"...)
	if ex.trusted && rq.xfHost {
		b = rq.appendFields(b, hkXFHost, "X-Forwarded-Host")
	} else {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, rq.host...)
		b = append(b, "\r\n"...)
	}
	switch {
	case ex.trusted && rq.xfProto:
		b = rq.appendFields(b, hkXFProto, "X-Forwarded-Proto")
	case fc.tls != nil:
		b = append(b, "X-Forwarded-Proto: https\r\n"...)
	default:
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	b = append(b, "Forwarded: "...)
	if ex.trusted && rq.fwd {
		b = rq.appendValues(b, hkForwarded, ", ")
		b = append(b, ", "...)
	}
	b = appendForwarded(b, fc.peer, rq.host, fc.tls != nil)
	return append(b, "\r\n\r\n"...)
}

// appendValues appends the values of the fields of kind k, joined by sep.
func (rq *reqHead) appendValues(b []byte, k hkind, sep string) []byte {
	first := true
	for i := range rq.fields[:rq.n] {
		if f := &rq.fields[i]; f.kind == k {
			if !first {
				b = append(b, sep...)
			}
			b = append(b, f.value...)
			first = false
		}
	}
	return b
}

// appendFields appends the fields of kind k as they are, under name.
func (rq *reqHead) appendFields(b []byte, k hkind, name string) []byte {
	for i := range rq.fields[:rq.n] {
		if f := &rq.fields[i]; f.kind == k {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, f.value...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// appendTarget appends the request target for the exchange's endpoint: the
// client's, below the endpoint's base path and with its query, as
// exchange.target builds it.
func appendTarget(b []byte, ex *exchange, target []byte) []byte {
	base := ex.ep.url
	if (base.Path == "" || base.Path == "/") && base.RawQuery == "" {
		return append(b, target...)
	}
	u, err := url.ParseRequestURI(string(target))
	if err != nil {
		return append(b, target...) // a clean target always parses
	}
	ex.path, ex.rawPath, ex.query = u.Path, u.RawPath, u.RawQuery
	ex.target(u, ex.ep)
	return append(b, u.RequestURI()...)
}

// xffValues appends the values of the request's X-Forwarded-For fields.
func (rq *reqHead) xffValues(dst []string) []string {
	for i := range rq.fields[:rq.n] {
		if f := &rq.fields[i]; f.kind == hkXFF {
			dst = append(dst, string(f.value))
		}
	}
	return dst
}
