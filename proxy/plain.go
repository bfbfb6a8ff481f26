package proxy

import (
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// ServePlain is the seam through which requests that did not arrive as
// HTTP/1.1 on the fast path (HTTP/2 streams, from net/http's server or a
// frame-level one) reach the fast path's upstream side: the pooled
// keep-alive HTTP/1.1 connections to http endpoints, with the same
// decision, endpoint choice, retries and failover, passive health
// reports, metrics, access log, forwarding headers and upstream framing
// checks (proxy/internal/h1) as a request the fast path reads itself.
//
// The caller describes the request with a PlainRequest and takes the
// response through a PlainResponse. Neither needs to allocate per
// request: both are meant to be fields of a pooled stream object.

// HeaderFields is a list of header fields read by index, in the order
// they arrived.
type HeaderFields interface {
	// Len is the number of fields.
	Len() int
	// Field returns the i-th field. The slices are only read, and only
	// during the call to ServePlain.
	Field(i int) (name, value []byte)
}

// PlainRequest describes one request for ServePlain. Its slices are read
// during the call only.
type PlainRequest struct {
	// Method is the request method (":method").
	Method []byte
	// Target is the request target in origin form, path and query
	// (":path").
	Target []byte
	// Authority is the host and optional port (":authority", or the Host
	// field when there is none).
	Authority []byte
	// Header holds the regular header fields (no pseudo-fields), names in
	// any case (HTTP/2 delivers them in lower case). HTTP/2 has no
	// connection-specific fields; "te: trailers" is passed upstream as
	// net/http passes it. Cookie fields split by HTTP/2 are joined with
	// "; " for the HTTP/1.1 upstream (RFC 9113 section 8.2.3).
	Header HeaderFields
	// Body is the request body; nil when there is none. When it also
	// has a SetReadDeadline(time.Time) error method, reading it is
	// bounded by the service's timeout.
	Body io.Reader
	// ContentLength is the body's length, or -1 when unknown (HTTP/2
	// without a content-length field).
	ContentLength int64
	// Peer is the client's address (the TCP peer).
	Peer netip.Addr
	// TLS is set when the client connection is TLS; ServerName is then
	// its SNI.
	TLS        bool
	ServerName string
}

// PlainResponse takes the response ServePlain relays. The response ends
// when ServePlain returns: the caller then sends what Write buffered and
// ends the stream (HTTP/2: END_STREAM on the last DATA or trailers
// frame), unless Abort was called. ServePlain flushes only where the
// body's pace is the upstream's (event streams, chunks, bodies delimited
// by the close), as the fast path does. Errors from the methods mean the
// client is gone: ServePlain stops and counts the request as the
// client's (499) or with the status already sent.
type PlainResponse interface {
	// WriteHead sends a response head: an informational one (1xx, any
	// number of times), then the final one. The fields are filtered for
	// the client as ReverseProxy filters them (no hop-by-hop or framing
	// fields but content-length), names in lower case, with
	// x-meridian-region, date and a sniffed content-type added; the
	// slices point into the upstream's buffer and are valid during the
	// call only.
	WriteHead(code int, fields *ResponseFields) error
	// Write sends body bytes; they may be kept in a buffer until Flush.
	Write(p []byte) (int, error)
	// Flush sends what Write buffered.
	Flush() error
	// WriteTrailers ends the response with trailer fields (names in
	// lower case); it is called only for responses that carry some.
	WriteTrailers(fields *ResponseFields) error
	// Abort ends a response whose body broke off: the client must not
	// take it for complete (HTTP/2: RST_STREAM; net/http:
	// http.ErrAbortHandler).
	Abort()
	// Done is closed when the client went away (stream reset,
	// connection closed); nil when that cannot be known.
	Done() <-chan struct{}
}

// ResponseFields are the header or trailer fields of a response, read by
// index. The slices are valid until the method they were passed to
// returns.
type ResponseFields struct {
	f []h1.Field
}

var _ HeaderFields = (*ResponseFields)(nil)

// Len is the number of fields.
func (r *ResponseFields) Len() int { return len(r.f) }

// Field returns the i-th field.
func (r *ResponseFields) Field(i int) (name, value []byte) { return r.f[i].Name, r.f[i].Value }

func (r *ResponseFields) add(name, value []byte) {
	r.f = append(r.f, h1.Field{Name: name, Value: value})
}

// plainConn is the state of one ServePlain call, pooled.
type plainConn struct {
	p    *Proxy
	rq   *PlainRequest
	w    PlainResponse
	ex   *exchange
	trip fastpath.Trip // the upstream side of the request
	out  ResponseFields
	// onStream is pc.sendStream, bound once.
	onStream func(u *fastpath.UpConn) error

	m       h1.Method
	head    bool // a HEAD request
	ua      int  // index of the User-Agent field, -1 none
	te      bool // te lists trailers
	idemKey bool
	xff     bool
	xfHost  bool
	xfProto bool
	fwd     bool
	peerIP  []byte // the client's address as X-Forwarded-For names it

	// body holds a replayable body; clen is the length sent upstream
	// (-1: chunked). stream is set when the body beyond body is read
	// from the client while it is sent, once.
	body    []byte
	clen    int64
	stream  bool
	sb      streamBody
	wire    []byte // the request as sent upstream: head, then body
	vals    []byte // values of the fields added for the client
	sizeBuf [24]byte
}

var plainPool = sync.Pool{New: func() any {
	pc := &plainConn{peerIP: make([]byte, 0, 48)}
	pc.trip.Inform = pc.inform
	pc.onStream = pc.sendStream
	return pc
}}

// ServePlain forwards one request of a plain service (every endpoint http,
// no sticky cookies: the services the HTTP/1.1 fast path takes) over the
// fast path's pooled HTTP/1.1 upstream connections and relays the response
// to w. It returns false, having read and written nothing, when the
// request is not for it: no routing table yet, a service that is not
// plain, a CONNECT or extended CONNECT, a target that is not clean origin
// form, an invalid authority, an upgrade, an expectation, or gRPC. The
// caller then serves the request the general way (Proxy.ServeHTTP).
// A Host no service owns is answered 421 here, as ServeHTTP answers it.
//
// The request body is sent with Content-Length when its length is known or
// it fits in the service's max_retry_body (it is then read in full first
// and may be replayed by retries); otherwise it is streamed once with
// chunked framing, and only a connect failure is retried. The response is
// checked as the fast path checks it (h1.ParseResponse, chunk lines,
// trailers); a response that breaks off after its head is aborted (w.Abort).
//
// It is safe for concurrent use; a call allocates nothing in the steady
// state beyond what w and the body reader do.
func (p *Proxy) ServePlain(rq *PlainRequest, w PlainResponse) bool {
	tab := p.tab.Load()
	if tab == nil || !plainCandidate(rq) {
		return false
	}
	svc := tab.withSNI(tab.lookupBytes(rq.Authority), rq.ServerName)
	if svc != nil && (!svc.plain || svc.sticky == stickyCookie) {
		return false
	}
	pc := plainPool.Get().(*plainConn)
	pc.p, pc.rq, pc.w = p, rq, w
	pc.trip.Client.Watch = w
	pc.trip.Out.P = w
	if !pc.scan() {
		pc.release()
		return false
	}
	if svc == nil {
		var buf [256]byte
		msg := append(buf[:0], "meridian: no service for host "...)
		msg = strconv.AppendQuote(msg, string(rq.Authority))
		msg = append(msg, '\n')
		_ = pc.answer(http.StatusMisdirectedRequest, msg, nil, false) // a failed write: the client left
		pc.release()
		return true
	}
	ex := p.pool.Get().(*exchange)
	ex.p, ex.tab, ex.svc = p, tab, svc
	ex.start = p.now()
	svc.st.load.active.Add(1)
	pc.ex = ex
	finished := false
	defer func() {
		if !finished { // a panic
			p.finish(ex)
			pc.release()
		}
	}()
	pc.serve()
	finished = true
	p.finish(ex)
	pc.release()
	return true
}

// plainCandidate checks the request line's parts.
func plainCandidate(rq *PlainRequest) bool {
	if len(rq.Method) == 0 || string(rq.Method) == http.MethodConnect || !h1.CleanTarget(rq.Target) ||
		!h1.ValidHost(rq.Authority) || rq.Header == nil {
		return false
	}
	for _, c := range rq.Method {
		if !h1.TokenByte(c) {
			return false
		}
	}
	return true
}

// scan notes what the proxy needs from the header fields; false when the
// request is not for ServePlain (fields net/http's server refuses in
// HTTP/2, an upgrade, an expectation, gRPC, a field that could not be
// written on an HTTP/1.1 wire as it is).
func (pc *plainConn) scan() bool {
	rq := pc.rq
	pc.m = h1.ParseMethod(rq.Method)
	pc.head = pc.m == h1.MethodHead
	pc.ua, pc.te, pc.idemKey, pc.xff, pc.xfHost, pc.xfProto, pc.fwd = -1, false, false, false, false, false, false
	for i, n := 0, rq.Header.Len(); i < n; i++ {
		name, value := rq.Header.Field(i)
		if !validFieldName(name) || !validFieldValue(value) {
			return false
		}
		switch h1.HeaderKind(name) {
		case h1.KindTransferEncoding, h1.KindUpgrade, h1.KindExpect, h1.KindConnection, h1.KindHop, h1.KindTrailer:
			return false
		case h1.KindTe:
			if !h1.EqualFold(h1.TrimOWS(value), "trailers") {
				return false
			}
			pc.te = true
		case h1.KindUserAgent:
			if pc.ua < 0 {
				pc.ua = i
			}
		case h1.KindIdemKey:
			pc.idemKey = true
		case h1.KindXFF:
			pc.xff = true
		case h1.KindXFHost:
			pc.xfHost = true
		case h1.KindXFProto:
			pc.xfProto = true
		case h1.KindForwarded:
			pc.fwd = true
		case h1.KindContentType:
			if h1.HasPrefixFold(value, "application/grpc") {
				return false
			}
		}
	}
	pc.peerIP = pc.peerIP[:0]
	if rq.Peer.IsValid() {
		pc.peerIP = rq.Peer.AppendTo(pc.peerIP)
	}
	return true
}

// validFieldName reports whether a field name is a non-empty token.
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !h1.TokenByte(c) {
			return false
		}
	}
	return true
}

// validFieldValue reports whether a value may go on an HTTP/1.1 wire as it
// is: no control characters but tab (httpguts.ValidHeaderFieldValue).
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func (pc *plainConn) release() {
	pc.p, pc.rq, pc.w, pc.ex = nil, nil, nil, nil
	pc.sb = streamBody{}
	if cap(pc.wire) > 128<<10 {
		pc.wire = nil
	}
	if cap(pc.body) > 128<<10 {
		pc.body = nil
	}
	pc.trip.Release()
	clear(pc.out.f)
	pc.out.f = pc.out.f[:0]
	plainPool.Put(pc)
}

// answer sends a short plain-text answer, with the fields plainError
// gives it.
func (pc *plainConn) answer(code int, msg []byte, rg *region, retryAfter bool) error {
	b := slices64(pc.vals[:0], 160+len(msg))
	pc.out.f = pc.out.f[:0]
	start := len(b)
	b = append(b, "text/plain; charset=utf-8"...)
	ct := b[start:]
	start = len(b)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	cl := b[start:]
	start = len(b)
	b = h1.AppendDate(b)
	date := b[start+len("Date: ") : len(b)-2]
	pc.out.add(nameContentType, ct)
	pc.out.add(nameNosniff, valueNosniff)
	if retryAfter {
		pc.out.add(nameRetryAfter, valueRetryAfter)
	}
	if rg != nil {
		start = len(b)
		b = append(b, rg.name...)
		pc.out.add(nameRegion, b[start:])
	}
	pc.out.add(nameDate, date)
	pc.out.add(nameContentLength, cl)
	pc.vals = b
	if err := pc.w.WriteHead(code, &pc.out); err != nil {
		return err
	}
	if pc.head {
		return nil
	}
	_, err := pc.w.Write(msg)
	return err
}

// Names and values of the fields ServePlain adds.
var (
	nameContentType   = []byte("content-type")
	nameContentLength = []byte("content-length")
	nameDate          = []byte("date")
	nameRegion        = []byte("x-meridian-region")
	nameNosniff       = []byte("x-content-type-options")
	valueNosniff      = []byte("nosniff")
	nameRetryAfter    = []byte("retry-after")
	valueRetryAfter   = []byte(strconv.Itoa(writeRetryAfter))
)

// slices64 returns b with room for n more bytes.
func slices64(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}
