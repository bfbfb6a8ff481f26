package proxy

import (
	"net/http"
	"net/textproto"
	"sync"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// httpPlain adapts a request net/http's server received as HTTP/2 to
// ServePlain: it is the request's PlainRequest header list and body and
// its PlainResponse.
type httpPlain struct {
	r       *http.Request
	w       http.ResponseWriter
	rq      PlainRequest
	fields  []h1.Field
	buf     []byte // the request's method, target, host and fields
	vals    []byte // scratch for response field values
	aborted bool
	final   bool // a final (non-1xx) head was written
}

var (
	_ HeaderFields  = (*httpPlain)(nil)
	_ PlainResponse = (*httpPlain)(nil)
)

var httpPlainPool = sync.Pool{New: func() any { return new(httpPlain) }}

// servePlainHTTP serves an HTTP/2 request through ServePlain; false when
// ServePlain does not take it (nothing was read or written then). Requests
// that declare trailers stay with ReverseProxy, which relays them.
func (p *Proxy) servePlainHTTP(w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor != 2 || r.Trailer != nil || r.Method == http.MethodConnect {
		return false
	}
	a := httpPlainPool.Get().(*httpPlain)
	a.r, a.w, a.aborted = r, w, false
	a.fields = a.fields[:0]
	size := len(r.Method) + len(r.RequestURI) + len(r.Host)
	for name, vs := range r.Header {
		for _, v := range vs {
			size += len(name) + len(v)
		}
	}
	// Room for all first: the request's slices point into buf.
	a.buf = slices64(a.buf[:0], size)
	a.buf = append(a.buf, r.Method...)
	a.buf = append(a.buf, r.RequestURI...)
	a.buf = append(a.buf, r.Host...)
	method := a.buf[:len(r.Method)]
	target := a.buf[len(method) : len(method)+len(r.RequestURI)]
	host := a.buf[len(method)+len(target):]
	for name, vs := range r.Header {
		for _, v := range vs {
			start := len(a.buf)
			a.buf = append(a.buf, name...)
			mid := len(a.buf)
			a.buf = append(a.buf, v...)
			a.fields = append(a.fields, h1.Field{Name: a.buf[start:mid], Value: a.buf[mid:]})
		}
	}
	a.rq = PlainRequest{
		Method:        method,
		Target:        target,
		Authority:     host,
		Header:        a,
		ContentLength: r.ContentLength,
		Peer:          peerAddr(r.RemoteAddr),
		TLS:           r.TLS != nil,
	}
	if r.TLS != nil {
		a.rq.ServerName = r.TLS.ServerName
	}
	if r.Body != nil && r.Body != http.NoBody {
		a.rq.Body = httpBody{r: r, w: w}
	} else {
		a.rq.ContentLength = 0
	}
	ok := p.ServePlain(&a.rq, a)
	aborted := a.aborted
	a.final = false
	clear(a.fields)
	a.r, a.w, a.rq = nil, nil, PlainRequest{}
	if cap(a.buf) <= 64<<10 {
		httpPlainPool.Put(a)
	}
	if aborted {
		// The response broke off: the client must not take it for
		// complete (the HTTP/2 server resets the stream).
		panic(http.ErrAbortHandler)
	}
	return ok
}

func (a *httpPlain) Len() int { return len(a.fields) }

func (a *httpPlain) Field(i int) (name, value []byte) { return a.fields[i].Name, a.fields[i].Value }

// WriteHead sets the fields in the ResponseWriter's header and writes the
// status. The values share one string and the header's value slices one
// array, so that a head costs two allocations besides net/http's.
func (a *httpPlain) WriteHead(code int, fields *ResponseFields) error {
	a.setFields(fields, "")
	a.w.WriteHeader(code)
	a.final = code >= 200
	if code < 200 {
		clear(a.w.Header()) // net/http keeps a 1xx's fields for the next head
	}
	return nil
}

// setFields adds fields to the ResponseWriter's header, their names in
// canonical form after prefix.
func (a *httpPlain) setFields(fields *ResponseFields, prefix string) {
	h := a.w.Header()
	n := 0
	for i := range fields.f {
		n += len(fields.f[i].Value)
	}
	all := string(a.joinValues(fields, n))
	vals := make([]string, len(fields.f))
	off := 0
	for i := range fields.f {
		f := &fields.f[i]
		v := all[off : off+len(f.Value)]
		off += len(f.Value)
		k := canonicalName(f.Name)
		if prefix != "" {
			k = prefix + k
		}
		if prev := h[k]; len(prev) > 0 {
			h[k] = append(prev, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
}

// joinValues is the fields' values end to end, in a's buffer.
func (a *httpPlain) joinValues(fields *ResponseFields, n int) []byte {
	b := slices64(a.vals[:0], n)
	for i := range fields.f {
		b = append(b, fields.f[i].Value...)
	}
	a.vals = b
	return b
}

// canonicalName is a lower-case field name in the form net/http keys its
// header maps with; the usual names cost no allocation.
func canonicalName(name []byte) string {
	switch string(name) {
	case "content-type":
		return "Content-Type"
	case "content-length":
		return "Content-Length"
	case "date":
		return "Date"
	case "x-meridian-region":
		return "X-Meridian-Region"
	case "server":
		return "Server"
	case "cache-control":
		return "Cache-Control"
	case "etag":
		return "Etag"
	case "last-modified":
		return "Last-Modified"
	case "content-encoding":
		return "Content-Encoding"
	case "vary":
		return "Vary"
	case "set-cookie":
		return "Set-Cookie"
	case "location":
		return "Location"
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

func (a *httpPlain) Write(p []byte) (int, error) { return a.w.Write(p) }

// Flush sends what is buffered. Before the final head it does nothing:
// net/http sends a 1xx head at once, and flushing then would send 200.
func (a *httpPlain) Flush() error {
	if !a.final {
		return nil
	}
	if f, ok := a.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// WriteTrailers sets the trailers, which net/http sends when the handler
// returns.
func (a *httpPlain) WriteTrailers(fields *ResponseFields) error {
	a.setFields(fields, http.TrailerPrefix)
	return nil
}

func (a *httpPlain) Abort() { a.aborted = true }

func (a *httpPlain) Done() <-chan struct{} { return a.r.Context().Done() }

// httpBody is a request body whose reads can be bounded in time.
type httpBody struct {
	r *http.Request
	w http.ResponseWriter
}

func (b httpBody) Read(p []byte) (int, error) { return b.r.Body.Read(p) }

func (b httpBody) SetReadDeadline(t time.Time) error {
	return http.NewResponseController(b.w).SetReadDeadline(t)
}
