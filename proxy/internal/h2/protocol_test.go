package h2

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

func TestPrefaceRequired(t *testing.T) {
	checkGoroutines(t)
	ts := newTestServer(t, okHandler, false)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	r := &rawConn{t: t, c: c}
	if !r.closed() {
		t.Error("a connection without the preface stayed open")
	}
}

func TestPrefaceTimeout(t *testing.T) {
	checkGoroutines(t)
	ts := newTestServer(t, okHandler, false, func(s *Server) { s.PrefaceTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte(http2.ClientPreface[:10]))
	start := time.Now()
	if !(&rawConn{t: t, c: c}).closed() {
		t.Fatal("a connection that sent half the preface stayed open")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v, want about the preface timeout", d)
	}
}

func TestFirstFrameMustBeSettings(t *testing.T) {
	ts := newTestServer(t, okHandler, false)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawConn{t: t, c: c, fr: http2.NewFramer(c, c)}
	_, _ = c.Write([]byte(http2.ClientPreface))
	_ = r.fr.WritePing(false, [8]byte{})
	r.wantGoAway(http2.ErrCodeProtocol)
}

func TestServerSettings(t *testing.T) {
	ts := newTestServer(t, okHandler, false)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawConn{t: t, c: c, fr: http2.NewFramer(c, c)}
	_, _ = c.Write([]byte(http2.ClientPreface))
	_ = r.fr.WriteSettings()
	sf, ok := r.next().(*http2.SettingsFrame)
	if !ok {
		t.Fatal("no SETTINGS first")
	}
	if v, _ := sf.Value(http2.SettingMaxConcurrentStreams); v != DefaultMaxConcurrentStreams {
		t.Errorf("MAX_CONCURRENT_STREAMS %d", v)
	}
	if v, _ := sf.Value(http2.SettingMaxHeaderListSize); v != DefaultMaxHeaderListSize {
		t.Errorf("MAX_HEADER_LIST_SIZE %d", v)
	}
	if v, ok := sf.Value(http2.SettingEnablePush); !ok || v != 0 {
		t.Errorf("ENABLE_PUSH %d %v, want 0", v, ok)
	}
	f := r.until(func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	if f == nil {
		t.Fatal("our SETTINGS were not acknowledged")
	}
}

func TestInvalidSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    http2.Setting
		code http2.ErrCode
	}{
		{"enable push 2", http2.Setting{ID: http2.SettingEnablePush, Val: 2}, http2.ErrCodeProtocol},
		{"initial window 2^31", http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31}, http2.ErrCodeFlowControl},
		{"max frame size small", http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16383}, http2.ErrCodeProtocol},
		{"max frame size large", http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 24}, http2.ErrCodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, okHandler, false)
			r := dialRaw(t, ts.addr)
			var p [6]byte
			binary.BigEndian.PutUint16(p[:], uint16(tc.s.ID))
			binary.BigEndian.PutUint32(p[2:], tc.s.Val)
			r.raw(http2.FrameSettings, 0, 0, p[:])
			r.wantGoAway(tc.code)
		})
	}
}

func TestPingAnswered(t *testing.T) {
	ts := newTestServer(t, okHandler, false)
	r := dialRaw(t, ts.addr)
	data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	_ = r.fr.WritePing(false, data)
	f := r.until(func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() })
	if f == nil || f.(*http2.PingFrame).Data != data {
		t.Fatalf("got %v, want a PING ACK with our data", f)
	}
}

func TestWindowUpdateRules(t *testing.T) {
	inc := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	t.Run("zero on the connection", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.raw(http2.FrameWindowUpdate, 0, 0, inc(0))
		r.wantGoAway(http2.ErrCodeProtocol)
	})
	t.Run("overflow on the connection", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.raw(http2.FrameWindowUpdate, 0, 0, inc(1<<31-1))
		r.wantGoAway(http2.ErrCodeFlowControl)
	})
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	blocking := waitThenOK(block)
	t.Run("zero on a stream", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, blocking, false).addr)
		r.headers(1, true, get("/")...)
		r.raw(http2.FrameWindowUpdate, 0, 1, inc(0))
		r.wantReset(1, http2.ErrCodeProtocol)
	})
	t.Run("overflow on a stream", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, blocking, false).addr)
		r.headers(1, true, get("/")...)
		r.raw(http2.FrameWindowUpdate, 0, 1, inc(1<<31-1))
		r.wantReset(1, http2.ErrCodeFlowControl)
	})
	t.Run("on an idle stream", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.raw(http2.FrameWindowUpdate, 0, 5, inc(1))
		r.wantGoAway(http2.ErrCodeProtocol)
	})
}

func TestStreamStates(t *testing.T) {
	t.Run("even stream", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.headers(2, true, get("/")...)
		r.wantGoAway(http2.ErrCodeProtocol)
	})
	t.Run("DATA on an idle stream", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WriteData(1, true, []byte("x"))
		r.wantGoAway(http2.ErrCodeProtocol)
	})
	t.Run("RST_STREAM on an idle stream", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		r.wantGoAway(http2.ErrCodeProtocol)
	})
	t.Run("stream ids going down", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.headers(5, true, get("/")...)
		if st := r.status(5); st != "200" {
			t.Fatalf("got %q", st)
		}
		r.headers(3, true, get("/")...)
		r.wantGoAway(http2.ErrCodeStreamClosed)
	})
	t.Run("DATA after END_STREAM", func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		r := dialRaw(t, newTestServer(t, waitThenOK(block), false).addr)
		r.headers(1, true, get("/")...)
		_ = r.fr.WriteData(1, false, []byte("x"))
		r.wantReset(1, http2.ErrCodeStreamClosed)
	})
	t.Run("DATA on a closed stream", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.headers(1, true, get("/")...)
		if st := r.status(1); st != "200" {
			t.Fatalf("got %q", st)
		}
		_ = r.fr.WriteData(1, false, []byte("x"))
		r.wantReset(1, http2.ErrCodeStreamClosed)
	})
	t.Run("HEADERS from the client with PUSH_PROMISE", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: r.block(get("/")...), EndHeaders: true})
		r.wantGoAway(http2.ErrCodeProtocol)
	})
	t.Run("frame too large", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.headers(1, false, get("/")...)
		_ = r.fr.WriteData(1, false, make([]byte, 16385))
		r.wantGoAway(http2.ErrCodeFrameSize)
	})
	t.Run("PRIORITY on itself", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WritePriority(3, http2.PriorityParam{StreamDep: 3, Weight: 1})
		r.wantReset(3, http2.ErrCodeProtocol)
		r.headers(5, true, get("/")...) // the connection lives on
		if st := r.status(5); st != "200" {
			t.Fatalf("got %q", st)
		}
	})
	t.Run("HEADERS on itself", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(get("/")...), EndStream: true, EndHeaders: true,
			Priority: http2.PriorityParam{StreamDep: 1, Weight: 1}})
		r.wantReset(1, http2.ErrCodeProtocol)
	})
	t.Run("unknown frame types are ignored", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.raw(0x42, 0, 0, []byte("whatever"))
		r.headers(1, true, get("/")...)
		if st := r.status(1); st != "200" {
			t.Fatalf("got %q", st)
		}
	})
	t.Run("CONTINUATION without HEADERS", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WriteContinuation(1, true, r.block(get("/")...))
		r.wantGoAway(http2.ErrCodeProtocol)
	})
	t.Run("another frame inside a header block", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		b := r.block(get("/")...)
		_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndStream: true})
		_ = r.fr.WritePing(false, [8]byte{})
		r.wantGoAway(http2.ErrCodeProtocol)
	})
}

func TestHeaderRules(t *testing.T) {
	host := []string{":method", "GET", ":scheme", "http", ":authority", "a"}
	for _, tc := range []struct {
		name string
		kv   []string
	}{
		{"uppercase name", append(get("/"), "X-Up", "1")},
		{"connection header", append(get("/"), "connection", "close")},
		{"keep-alive", append(get("/"), "keep-alive", "1")},
		{"transfer-encoding", append(get("/"), "transfer-encoding", "chunked")},
		{"upgrade", append(get("/"), "upgrade", "h2c")},
		{"te other than trailers", append(get("/"), "te", "gzip")},
		{"no :path", host},
		{"empty :path", append(host, ":path", "")},
		{"no :method", []string{":scheme", "http", ":path", "/"}},
		{"unknown pseudo", append(get("/"), ":protocol", "x")},
		{"response pseudo", append(get("/"), ":status", "200")},
		{"pseudo after regular", append(append([]string{":method", "GET", "x", "1"}, ":scheme", "http"), ":path", "/")},
		{"twice :method", append(get("/"), ":method", "GET")},
		{"CONNECT with :path", []string{":method", "CONNECT", ":authority", "a:443", ":path", "/"}},
		{"CONNECT without :authority", []string{":method", "CONNECT"}},
		{"value with a newline", append(get("/"), "x", "a\nb")},
		{"value with leading space", append(get("/"), "x", " a")},
		{"name with a space", append(get("/"), "x y", "a")},
		{"bad content-length", append(get("/"), "content-length", "x")},
		{"content-length on an empty request", append(get("/"), "content-length", "3")},
		{"path not absolute", append(host, ":path", "a")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, okHandler, false)
			r := dialRaw(t, ts.addr)
			r.headers(1, true, tc.kv...)
			r.wantReset(1, http2.ErrCodeProtocol)
			r.headers(3, true, get("/")...)
			if st := r.status(3); st != "200" {
				t.Fatalf("the connection did not live on: %q", st)
			}
		})
	}
	t.Run("CONNECT", func(t *testing.T) {
		got := make(chan string, 1)
		ts := newTestServer(t, func(s *Stream) { got <- string(s.Authority()); okHandler(s) }, false)
		r := dialRaw(t, ts.addr)
		r.headers(1, false, ":method", "CONNECT", ":authority", "a:443")
		if st := r.status(1); st != "200" || <-got != "a:443" {
			t.Fatalf("got %q", st)
		}
	})
	t.Run("te trailers", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		r.headers(1, true, append(get("/"), "te", "trailers")...)
		if st := r.status(1); st != "200" {
			t.Fatalf("got %q", st)
		}
	})
}

func TestContentLengthAgainstData(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	h := waitThenOK(block)
	t.Run("more", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, h, false).addr)
		r.headers(1, false, append(get("/"), "content-length", "2")...)
		_ = r.fr.WriteData(1, true, []byte("abc"))
		r.wantReset(1, http2.ErrCodeProtocol)
	})
	t.Run("less", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, h, false).addr)
		r.headers(1, false, append(get("/"), "content-length", "4")...)
		_ = r.fr.WriteData(1, true, []byte("abc"))
		r.wantReset(1, http2.ErrCodeProtocol)
	})
	t.Run("less before trailers", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, h, false).addr)
		r.headers(1, false, append(get("/"), "content-length", "4")...)
		_ = r.fr.WriteData(1, false, []byte("abc"))
		r.headers(1, true, "x-t", "1")
		r.wantReset(1, http2.ErrCodeProtocol)
	})
	t.Run("trailers without END_STREAM", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, h, false).addr)
		r.headers(1, false, get("/")...)
		r.headers(1, false, "x-t", "1")
		r.wantReset(1, http2.ErrCodeProtocol)
	})
	t.Run("pseudo in trailers", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, h, false).addr)
		r.headers(1, false, get("/")...)
		r.headers(1, true, ":path", "/")
		r.wantReset(1, http2.ErrCodeProtocol)
	})
}

func TestHeaderListTooLarge(t *testing.T) {
	called := make(chan struct{}, 1)
	ts := newTestServer(t, func(s *Stream) { called <- struct{}{}; okHandler(s) }, false,
		func(s *Server) { s.MaxHeaderListSize = 8 << 10 })
	r := dialRaw(t, ts.addr)
	kv := get("/")
	for i := range 10 {
		kv = append(kv, "x-big", strings.Repeat(string(rune('a'+i)), 1000))
	}
	b := r.block(kv...)
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:5000], EndStream: true})
	_ = r.fr.WriteContinuation(1, true, b[5000:])
	if st := r.status(1); st != "431" {
		t.Fatalf("got %q, want 431", st)
	}
	select {
	case <-called:
		t.Error("the handler saw a request over the limit")
	default:
	}
	r.headers(3, true, get("/")...)
	if st := r.status(3); st != "200" {
		t.Fatalf("the connection did not live on: %q", st)
	}
}

func TestHPACKErrors(t *testing.T) {
	t.Run("bad index", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0x7f}, EndStream: true, EndHeaders: true})
		r.wantGoAway(http2.ErrCodeCompression)
	})
	t.Run("truncated block", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x40, 0x05, 'a'}, EndStream: true, EndHeaders: true})
		r.wantGoAway(http2.ErrCodeCompression)
	})
	t.Run("table size above the setting", func(t *testing.T) {
		r := dialRaw(t, newTestServer(t, okHandler, false).addr)
		_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x3f, 0xe1, 0x7f}, EndStream: true, EndHeaders: true})
		r.wantGoAway(http2.ErrCodeCompression)
	})
}

// TestFramesAfterEarlyResponse: a response that ends before the request
// body closes the stream with RST_STREAM NO_ERROR; DATA and trailers the
// client sent before it saw that are dropped, and the connection lives
// on.
func TestFramesAfterEarlyResponse(t *testing.T) {
	r := dialRaw(t, newTestServer(t, okHandler, false).addr)
	r.headers(1, false, get("/")...)
	r.wantReset(1, http2.ErrCodeNo)
	_ = r.fr.WriteData(1, false, []byte("late"))
	r.headers(1, true, "x-trailer", "late")
	r.headers(3, true, get("/")...)
	for {
		f := r.next()
		if f == nil {
			t.Fatal("the connection closed")
		}
		if rs, ok := f.(*http2.RSTStreamFrame); ok && rs.StreamID == 1 {
			t.Fatalf("got %v for a frame in flight", rs.ErrCode)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 3 && d.StreamEnded() {
			return
		}
	}
}
