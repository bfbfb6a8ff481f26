package proxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// serve runs ServePlain's exchange, as fastServer.exchange runs the fast
// path's: decision, endpoint, body, attempts with retries and failover,
// then the response.
func (pc *plainConn) serve() {
	ex, rq := pc.ex, pc.rq
	svc := ex.svc
	whole := time.Now().Add(svc.timeout)
	if ex.note(rq.Peer, pc.m.Idempotent() || pc.idemKey, rq.Method) && pc.xff {
		var vals [4]string
		ex.client = svc.clientFromXFF(rq.Peer, pc.values(vals[:0], h1.KindXFF))
	}
	ex.begin() // sticky cookies never come here
	switch {
	case ex.write && (ex.d.NoData || ex.all):
		ex.code = http.StatusServiceUnavailable
		_ = pc.answer(ex.code, writeUnavailableMsg, regionOf(ex), true) // a failed write: the client left
		return
	case ex.d.NoData:
		ex.code = http.StatusServiceUnavailable
		_ = pc.answer(ex.code, []byte("meridian: no region may serve this request\n"), nil, false)
		return
	case ex.ep == nil:
		ex.code = http.StatusServiceUnavailable
		_ = pc.answer(ex.code, []byte("meridian: no endpoint may serve this request\n"), nil, false)
		return
	}
	if code, msg := pc.readBody(whole); code != 0 {
		ex.code = code
		_ = pc.answer(code, []byte(msg), nil, false)
		return
	}
	pc.wire = pc.appendRequest(pc.wire[:0])

	u, err := ex.roundTrips(&pc.trip, &pc.wire, whole, pc.head, func() {
		pc.wire = pc.appendRequest(pc.wire[:0])
	})
	if err != nil {
		pc.failed(err, whole)
		return
	}
	pc.respond(u, whole)
}

func regionOf(ex *exchange) *region {
	if ex.ep == nil {
		return nil
	}
	return ex.ep.region
}

// values appends the values of the request's fields of kind k.
func (pc *plainConn) values(dst []string, k h1.Kind) []string {
	h := pc.rq.Header
	for i, n := 0, h.Len(); i < n; i++ {
		if name, value := h.Field(i); h1.HeaderKind(name) == k {
			dst = append(dst, string(value))
		}
	}
	return dst
}

// readBody reads a body of known length up to max_retry_body, or of
// unknown length when it turns out to fit, into pc.body, to be sent with
// Content-Length and replayed by retries; a larger one is streamed once
// (chunked when its length is unknown), pc.body holding what was read
// of it. On failure it returns the status and message ServeHTTP answers
// with.
func (pc *plainConn) readBody(whole time.Time) (int, string) {
	rq, ex := pc.rq, pc.ex
	pc.body, pc.clen, pc.stream = pc.body[:0], 0, false
	if rq.Body == nil || rq.ContentLength == 0 {
		return 0, ""
	}
	if d, ok := rq.Body.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(whole) // unsupported, the body goes without
	}
	limit := ex.svc.maxBody
	ex.hasBody = true
	switch {
	case rq.ContentLength > 0 && rq.ContentLength <= limit:
		pc.body = slices64(pc.body, int(rq.ContentLength))[:rq.ContentLength]
		if _, err := io.ReadFull(rq.Body, pc.body); err != nil {
			return bodyError(err)
		}
		pc.clen = rq.ContentLength
	case rq.ContentLength < 0:
		n, err := pc.readUpTo(limit + 1)
		if err != nil {
			return bodyError(err)
		}
		if n <= limit {
			pc.clen = n
			break
		}
		pc.stream, pc.clen = true, -1
	default:
		pc.stream, pc.clen = true, rq.ContentLength
	}
	if pc.stream {
		pc.sb.r = rq.Body
		ex.stream = &pc.sb
		pc.trip.Stream = pc.onStream
		return 0, ""
	}
	if pc.clen == 0 {
		ex.hasBody = false
		return 0, ""
	}
	ex.replay = pc.body
	return 0, ""
}

// readUpTo reads the body into pc.body until its end or n bytes.
func (pc *plainConn) readUpTo(n int64) (int64, error) {
	for int64(len(pc.body)) < n {
		if len(pc.body) == cap(pc.body) {
			pc.body = slices64(pc.body, min(max(2*cap(pc.body), 4<<10), int(n)-len(pc.body)))
		}
		room := pc.body[len(pc.body):min(cap(pc.body), int(n))]
		k, err := pc.rq.Body.Read(room)
		pc.body = pc.body[:len(pc.body)+k]
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return int64(len(pc.body)), nil
}

// appendRequest appends the request sent upstream to the exchange's
// endpoint, the way the fast path's appendRequest writes it (and
// ReverseProxy with http.Transport would): the authority as Host, field
// names in canonical form, hop-by-hop fields left out, forwarding fields
// replaced (or, from a trusted proxy, extended), then the replayable body
// or the first part of a streamed one.
func (pc *plainConn) appendRequest(b []byte) []byte {
	rq, ex := pc.rq, pc.ex
	b = append(b, rq.Method...)
	b = append(b, ' ')
	b = appendTarget(b, ex, rq.Target)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, rq.Authority...)
	b = append(b, "\r\n"...)
	h := rq.Header
	if pc.ua >= 0 {
		_, v := h.Field(pc.ua)
		b = append(b, "User-Agent: "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	switch {
	case pc.clen < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case pc.clen > 0 || pc.m == h1.MethodPost || pc.m == h1.MethodPut || pc.m == h1.MethodPatch:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, pc.clen, 10)
		b = append(b, "\r\n"...)
	}
	cookies := false
	for i, n := 0, h.Len(); i < n; i++ {
		name, value := h.Field(i)
		if len(name) > 0 && name[0] == ':' {
			continue
		}
		switch h1.HeaderKind(name) {
		case h1.KindHost, h1.KindContentLength, h1.KindConnection, h1.KindHop, h1.KindTe, h1.KindTrailer,
			h1.KindUserAgent, h1.KindXFF, h1.KindXFHost, h1.KindXFProto, h1.KindForwarded:
			continue
		}
		if h1.EqualFold(name, "cookie") {
			if cookies {
				continue
			}
			cookies = true
			b = append(b, "Cookie: "...)
			b = pc.appendJoined(b, i, "cookie", "; ")
			b = append(b, "\r\n"...)
			continue
		}
		b = appendCanonical(b, name)
		b = append(b, ": "...)
		b = append(b, value...)
		b = append(b, "\r\n"...)
	}
	if pc.te {
		b = append(b, "Te: trailers\r\n"...)
	}

	b = append(b, "X-Forwarded-For: "...)
	if ex.trusted && pc.xff {
		b = pc.appendValuesOf(b, h1.KindXFF, ", ")
		b = append(b, ", "...)
	}
	b = append(b, pc.peerIP...)
	b = append(b, "\r\n"...)
	if ex.trusted && pc.xfHost {
		b = pc.appendFieldsOf(b, h1.KindXFHost, "X-Forwarded-Host")
	} else {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, rq.Authority...)
		b = append(b, "\r\n"...)
	}
	switch {
	case ex.trusted && pc.xfProto:
		b = pc.appendFieldsOf(b, h1.KindXFProto, "X-Forwarded-Proto")
	case rq.TLS:
		b = append(b, "X-Forwarded-Proto: https\r\n"...)
	default:
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	b = append(b, "Forwarded: "...)
	if ex.trusted && pc.fwd {
		b = pc.appendValuesOf(b, h1.KindForwarded, ", ")
		b = append(b, ", "...)
	}
	b = appendForwarded(b, rq.Peer, rq.Authority, rq.TLS)
	b = append(b, "\r\n\r\n"...)
	switch {
	case pc.clen < 0 && len(pc.body) > 0:
		b = strconv.AppendInt(b, int64(len(pc.body)), 16)
		b = append(b, "\r\n"...)
		b = append(b, pc.body...)
		b = append(b, "\r\n"...)
	default:
		b = append(b, pc.body...)
	}
	return b
}

// appendJoined appends the values of the fields named name from the i-th
// on, joined by sep.
func (pc *plainConn) appendJoined(b []byte, i int, name, sep string) []byte {
	h := pc.rq.Header
	first := true
	for n := h.Len(); i < n; i++ {
		if k, v := h.Field(i); h1.EqualFold(k, name) {
			if !first {
				b = append(b, sep...)
			}
			b = append(b, v...)
			first = false
		}
	}
	return b
}

// appendValuesOf appends the values of the fields of kind k, joined by sep.
func (pc *plainConn) appendValuesOf(b []byte, k h1.Kind, sep string) []byte {
	h := pc.rq.Header
	first := true
	for i, n := 0, h.Len(); i < n; i++ {
		if name, v := h.Field(i); h1.HeaderKind(name) == k {
			if !first {
				b = append(b, sep...)
			}
			b = append(b, v...)
			first = false
		}
	}
	return b
}

// appendFieldsOf appends the fields of kind k as they are, under name.
func (pc *plainConn) appendFieldsOf(b []byte, k h1.Kind, name string) []byte {
	h := pc.rq.Header
	for i, n := 0, h.Len(); i < n; i++ {
		if fname, v := h.Field(i); h1.HeaderKind(fname) == k {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// appendCanonical appends a field name in the canonical form net/http
// writes (textproto.CanonicalMIMEHeaderKey): upper case at the start and
// after each hyphen, lower case elsewhere.
func appendCanonical(b, name []byte) []byte {
	upper := true
	for _, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
		upper = c == '-'
	}
	return b
}

// bodyTooSlow tells a streamed body that stalled from one that broke.
func bodyTooSlow(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
