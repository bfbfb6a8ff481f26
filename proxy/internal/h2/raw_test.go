package h2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawConn is a client that writes frames by hand.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

// dialRaw connects, sends the preface and settings, and reads the
// server's SETTINGS.
func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawConn{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.enc = hpack.NewEncoder(&r.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	f := r.next()
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("got %v, want the server's SETTINGS first", f)
	}
	if err := r.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return r
}

// next reads a frame; nil at EOF or a reset.
func (r *rawConn) next() http2.Frame {
	r.t.Helper()
	f, err := r.fr.ReadFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("timed out reading a frame")
		}
		return nil
	}
	return f
}

// block HPACK-encodes name/value pairs.
func (r *rawConn) block(kv ...string) []byte {
	r.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = r.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(r.hbuf.Bytes())
}

func get(path string) []string {
	return []string{":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", path}
}

func (r *rawConn) headers(id uint32, end bool, kv ...string) {
	r.t.Helper()
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(kv...), EndStream: end, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) raw(t http2.FrameType, flags http2.Flags, id uint32, payload []byte) {
	r.t.Helper()
	if err := r.fr.WriteRawFrame(t, flags, id, payload); err != nil {
		r.t.Fatal(err)
	}
}

// until reads frames until match accepts one, and returns it; nil when
// the connection ends first.
func (r *rawConn) until(match func(http2.Frame) bool) http2.Frame {
	r.t.Helper()
	for {
		f := r.next()
		if f == nil || match(f) {
			return f
		}
	}
}

func (r *rawConn) wantGoAway(code http2.ErrCode) {
	r.t.Helper()
	f := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	if f == nil {
		r.t.Fatalf("connection closed without GOAWAY %v", code)
	}
	if g := f.(*http2.GoAwayFrame); g.ErrCode != code {
		r.t.Fatalf("got GOAWAY %v, want %v", g.ErrCode, code)
	}
	if !r.closed() {
		r.t.Fatal("connection open after GOAWAY")
	}
}

func (r *rawConn) wantReset(id uint32, code http2.ErrCode) {
	r.t.Helper()
	f := r.until(func(f http2.Frame) bool {
		if _, ok := f.(*http2.GoAwayFrame); ok {
			return true
		}
		rs, ok := f.(*http2.RSTStreamFrame)
		return ok && rs.StreamID == id
	})
	rs, ok := f.(*http2.RSTStreamFrame)
	if !ok || rs.ErrCode != code {
		if g, ok := f.(*http2.GoAwayFrame); ok {
			r.t.Fatalf("got GOAWAY %v, want RST_STREAM %v on stream %d", g.ErrCode, code, id)
		}
		r.t.Fatalf("got %v, want RST_STREAM %v on stream %d", f, code, id)
	}
}

// status reads until the response head of stream id and returns its
// :status.
func (r *rawConn) status(id uint32) string {
	r.t.Helper()
	f := r.until(func(f http2.Frame) bool {
		h, ok := f.(*http2.HeadersFrame)
		return ok && h.StreamID == id
	})
	if f == nil {
		r.t.Fatalf("no response on stream %d", id)
	}
	fields, err := hpack.NewDecoder(4096, nil).DecodeFull(f.(*http2.HeadersFrame).HeaderBlockFragment())
	if err != nil {
		r.t.Fatal(err)
	}
	for _, hf := range fields {
		if hf.Name == ":status" {
			return hf.Value
		}
	}
	return ""
}

// closed reports whether the server closes the connection (reading
// what it still sends).
func (r *rawConn) closed() bool {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, r.c)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func okHandler(s *Stream) {
	s.WriteHeader(200)
	_, _ = s.Write([]byte("ok"))
	_ = s.End()
}

// waitThenOK answers 200 once block is closed, unless the stream ends first.
func waitThenOK(block chan struct{}) Handler {
	return func(s *Stream) {
		select {
		case <-block:
			okHandler(s)
		case <-s.Done():
		}
	}
}
