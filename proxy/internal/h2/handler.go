package h2

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// ServeHTTP serves a stream through h, as net/http's HTTP/2 server would:
// an *http.Request with the stream's head, body and trailers, a
// ResponseWriter that is an http.Flusher, takes declared and
// http.TrailerPrefix trailers, sniffs Content-Type, adds Date, and
// Content-Length when the handler's whole body is known.
func ServeHTTP(s *Stream, h http.Handler) {
	req, err := newRequest(s)
	if err != nil {
		s.WriteHeader(http.StatusBadRequest)
		s.AddHeaderString("content-type", "text/plain; charset=utf-8")
		_, _ = s.Write([]byte(err.Error() + "\n"))
		_ = s.End()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !s.onReset(cancel) {
		return // reset before it started
	}
	req = req.WithContext(ctx)
	rw := &responseWriter{s: s, req: req, head: req.Method == http.MethodHead}
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				s.c.srv.Log.Error("panic serving an http2 request", "panic", v, "path", req.URL.Path)
			}
			s.Reset(http2.ErrCodeInternal)
		}
	}()
	h.ServeHTTP(rw, req)
	rw.finish()
}

func newRequest(s *Stream) (*http.Request, error) {
	method := string(s.Method())
	req := &http.Request{
		Method:     method,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     make(http.Header, s.NumFields()),
		RemoteAddr: s.Info().Remote.String(),
		TLS:        s.Info().TLS,
		Host:       string(s.Authority()),
	}
	var cookies []string
	for i := range s.NumFields() {
		n, v := s.Field(i)
		if string(n) == "cookie" {
			cookies = append(cookies, string(v))
			continue
		}
		k := textproto.CanonicalMIMEHeaderKey(string(n))
		req.Header[k] = append(req.Header[k], string(v))
	}
	if len(cookies) > 0 {
		req.Header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if req.Host == "" {
		req.Host = req.Header.Get("Host")
	}
	if method == http.MethodConnect {
		req.URL = &url.URL{Host: req.Host}
		req.RequestURI = req.Host
	} else {
		req.RequestURI = string(s.Path())
		u, err := url.ParseRequestURI(req.RequestURI)
		if err != nil {
			return nil, errors.New("bad :path")
		}
		req.URL = u
	}
	for _, v := range req.Header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(textproto.TrimString(k))
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, errors.New("bad trailer declaration")
			}
			if k != "" {
				if req.Trailer == nil {
					req.Trailer = make(http.Header)
				}
				req.Trailer[k] = nil
			}
		}
	}
	delete(req.Header, "Trailer")
	switch {
	case !s.HasBody():
		req.Body, req.ContentLength = http.NoBody, 0
	default:
		req.ContentLength = s.ContentLength()
		req.Body = &requestBody{s: s, req: req}
		if req.Header.Get("Expect") == "100-continue" {
			s.ExpectContinue()
		}
	}
	return req, nil
}

// requestBody reads the stream's body and, at its end, the trailers into
// Request.Trailer.
type requestBody struct {
	s      *Stream
	req    *http.Request
	closed bool
	eof    bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.s.Read(p)
	if err == io.EOF {
		b.eof = true
		for i := range b.s.NumTrailers() {
			name, v := b.s.Trailer(i)
			k := textproto.CanonicalMIMEHeaderKey(string(name))
			if b.req.Trailer == nil {
				b.req.Trailer = make(http.Header)
			}
			b.req.Trailer[k] = append(b.req.Trailer[k], string(v))
		}
	}
	return n, err
}

func (b *requestBody) Close() error {
	if !b.closed {
		b.closed = true
		b.s.CloseBody()
	}
	return nil
}

// responseWriter is the http.ResponseWriter of ServeHTTP.
type responseWriter struct {
	s       *Stream
	req     *http.Request
	header  http.Header
	status  int
	head    bool // a HEAD request: the body is dropped
	sent    bool // the head was handed to the stream
	buf     []byte
	written int64
	clen    int64 // declared Content-Length, or -1
	trailer []string
	err     error
}

var (
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
)

// bufferLimit is how much body the writer keeps before it sends the
// head: a handler done within it gets a Content-Length.
const bufferLimit = 4 << 10

func (w *responseWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 {
		if code == http.StatusSwitchingProtocols {
			return // no upgrades over HTTP/2
		}
		w.s.WriteHeader(code)
		w.addFields(w.header, false)
		_ = w.s.Flush()
		return
	}
	w.status = code
	w.clen = -1
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.clen = n
		} else {
			w.header.Del("Content-Length")
		}
	}
	for _, v := range w.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(textproto.TrimString(k)); k != "" {
				w.trailer = append(w.trailer, k)
			}
		}
	}
}

func bodyAllowed(code int) bool {
	return code != http.StatusNoContent && code != http.StatusNotModified && code >= 200
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.clen >= 0 && w.written+int64(len(p)) > w.clen {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	if !w.sent {
		if len(w.buf)+len(p) <= bufferLimit {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.sendHead(false)
	}
	if _, err := w.s.Write(p); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// sendHead hands the head and the buffered body to the stream; done
// says the handler has returned, so the body's length is known.
func (w *responseWriter) sendHead(done bool) {
	if w.sent {
		return
	}
	w.sent = true
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	h := w.Header()
	s := w.s
	s.WriteHeader(w.status)
	if bodyAllowed(w.status) {
		if _, ok := h["Content-Type"]; !ok && len(w.buf) > 0 && h.Get("Content-Encoding") == "" {
			h.Set("Content-Type", http.DetectContentType(w.buf))
		}
		if done && w.clen < 0 && len(h["Trailer"]) == 0 && !hasPrefixedTrailer(h) && (!w.head || w.written > 0) {
			h.Set("Content-Length", strconv.FormatInt(w.written, 10))
		}
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	w.addFields(h, false)
	if len(w.buf) > 0 {
		_, w.err = s.Write(w.buf)
		w.buf = w.buf[:0]
	}
}

func hasPrefixedTrailer(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// addFields adds h's fields to the head or, with trailers, the trailers,
// leaving out connection-specific ones.
func (w *responseWriter) addFields(h http.Header, trailers bool) {
	for k, vv := range h {
		if !trailers && strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			if trailers {
				w.s.AddTrailerString(k, v)
			} else {
				w.s.AddHeaderString(k, v)
			}
		}
	}
}

// Flush sends the head and what body is buffered.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush, with the error; http.ResponseController uses it.
func (w *responseWriter) FlushError() error {
	w.sendHead(false)
	if w.err != nil {
		return w.err
	}
	return w.s.Flush()
}

// finish ends the response once the handler returned.
func (w *responseWriter) finish() {
	w.sendHead(true)
	if w.err != nil {
		return
	}
	if w.clen >= 0 && w.written < w.clen && !w.head && bodyAllowed(w.status) {
		w.s.Reset(http2.ErrCodeInternal) // the body fell short of its Content-Length
		return
	}
	tr := make(http.Header)
	for _, k := range w.trailer {
		if vv, ok := w.header[k]; ok {
			tr[k] = vv
		}
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			tr[http.CanonicalHeaderKey(name)] = vv
		}
	}
	if len(tr) > 0 {
		w.addFields(tr, true)
	}
	_ = w.s.End() // a reset stream has nobody to tell
	if w.req.Body != nil {
		_ = w.req.Body.Close()
	}
}
