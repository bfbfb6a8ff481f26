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
	buf     []byte // the fields' names and values
	aborted bool
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
	size := 0
	for name, vs := range r.Header {
		for _, v := range vs {
			size += len(name) + len(v)
		}
	}
	// Room for all first: the fields point into buf.
	a.buf = slices64(a.buf[:0], size)
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
		Method:        []byte(r.Method),
		Target:        []byte(r.RequestURI),
		Authority:     []byte(r.Host),
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
// status.
func (a *httpPlain) WriteHead(code int, fields *ResponseFields) error {
	h := a.w.Header()
	for i := range fields.f {
		f := &fields.f[i]
		k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		h[k] = append(h[k], string(f.Value))
	}
	a.w.WriteHeader(code)
	if code < 200 {
		clear(h) // net/http keeps a 1xx's fields for the next head
	}
	return nil
}

func (a *httpPlain) Write(p []byte) (int, error) { return a.w.Write(p) }

func (a *httpPlain) Flush() error { return http.NewResponseController(a.w).Flush() }

// WriteTrailers sets the trailers, which net/http sends when the handler
// returns.
func (a *httpPlain) WriteTrailers(fields *ResponseFields) error {
	h := a.w.Header()
	for i := range fields.f {
		f := &fields.f[i]
		k := http.TrailerPrefix + textproto.CanonicalMIMEHeaderKey(string(f.Name))
		h[k] = append(h[k], string(f.Value))
	}
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
