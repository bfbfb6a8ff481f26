package proxy

import (
	"bytes"
	"sync"

	"golang.org/x/net/http2"

	"github.com/meridian-edge/meridian/proxy/internal/h2"
)

// h2Plain serves an HTTP/2 stream through ServePlain: it is the stream's
// PlainRequest header list and its PlainResponse, pooled, so that a
// request of a plain service costs no allocation of its own.
type h2Plain struct {
	s       *h2.Stream
	rq      PlainRequest
	headed  bool // a final head was written
	aborted bool
}

var (
	_ HeaderFields  = (*h2Plain)(nil)
	_ PlainResponse = (*h2Plain)(nil)
)

var h2PlainPool = sync.Pool{New: func() any { return new(h2Plain) }}

// Channels for Done, which ServePlain polls: one closed, one never.
var (
	goneChan  = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
	hereChan  = make(chan struct{})
	wellKnown = []byte("/.well-known/")
)

// serveStream serves one HTTP/2 stream: through ServePlain when it takes
// the request, through srv.Handler otherwise.
func (fs *fastServer) serveStream(s *h2.Stream) {
	if fs.servePlainStream(s) {
		return
	}
	h2.ServeHTTP(s, fs.next)
}

// servePlainStream offers the stream to ServePlain; false when it did
// not take it (nothing was read or written then).
func (fs *fastServer) servePlainStream(s *h2.Stream) bool {
	path := s.Path()
	if !fs.direct && bytes.HasPrefix(path, wellKnown) {
		return false // the wrapper around the proxy may answer these
	}
	for i := range s.NumFields() {
		if name, _ := s.Field(i); string(name) == "trailer" {
			return false // declared request trailers: ReverseProxy relays them
		}
	}
	a := h2PlainPool.Get().(*h2Plain)
	info := s.Info()
	a.s, a.headed, a.aborted = s, false, false
	a.rq = PlainRequest{
		Method:        s.Method(),
		Target:        path,
		Authority:     s.Authority(),
		Header:        a,
		ContentLength: 0,
		Peer:          info.Peer,
		TLS:           info.TLS != nil,
	}
	if info.TLS != nil {
		a.rq.ServerName = info.TLS.ServerName
	}
	if len(a.rq.Authority) == 0 {
		for i := range s.NumFields() {
			if name, v := s.Field(i); string(name) == "host" {
				a.rq.Authority = v
				break
			}
		}
	}
	if s.HasBody() {
		a.rq.Body, a.rq.ContentLength = s, s.ContentLength()
	}
	ok := fs.p.ServePlain(&a.rq, a)
	if ok {
		switch {
		case a.aborted:
			s.Reset(http2.ErrCodeInternal)
		case !a.headed:
			s.Reset(http2.ErrCodeCancel) // the client left before the head
		default:
			_ = s.End() // a failure: the client left
		}
	}
	a.s, a.rq = nil, PlainRequest{}
	h2PlainPool.Put(a)
	return ok
}

func (a *h2Plain) Len() int { return a.s.NumFields() }

func (a *h2Plain) Field(i int) (name, value []byte) { return a.s.Field(i) }

// WriteHead starts the response head; an informational one goes out at
// once, a final one with the first body bytes or the end.
func (a *h2Plain) WriteHead(code int, fields *ResponseFields) error {
	s := a.s
	s.WriteHeader(code)
	for i := range fields.f {
		s.AddHeader(fields.f[i].Name, fields.f[i].Value)
	}
	if code < 200 {
		return s.Flush()
	}
	a.headed = true
	return nil
}

func (a *h2Plain) Write(p []byte) (int, error) { return a.s.Write(p) }

func (a *h2Plain) Flush() error { return a.s.Flush() }

// WriteTrailers adds the trailers the stream's end sends.
func (a *h2Plain) WriteTrailers(fields *ResponseFields) error {
	for i := range fields.f {
		a.s.AddTrailer(fields.f[i].Name, fields.f[i].Value)
	}
	return nil
}

func (a *h2Plain) Abort() { a.aborted = true }

// Done is closed when the stream is gone; ServePlain only polls it.
func (a *h2Plain) Done() <-chan struct{} {
	if a.s.Gone() {
		return goneChan
	}
	return hereChan
}
