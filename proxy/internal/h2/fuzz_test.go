package h2

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzConn feeds arbitrary bytes after the preface and a SETTINGS frame
// to a connection: it must neither panic nor hang, and the connection
// ends once the client's side closes.
func FuzzConn(f *testing.F) {
	frame := func(t http2.FrameType, flags http2.Flags, id uint32, p []byte) []byte {
		return append(appendFrameHeader(nil, len(p), t, flags, id), p...)
	}
	var hb []byte
	enc := hpack.NewEncoder(writerFunc(func(p []byte) (int, error) { hb = append(hb, p...); return len(p), nil }))
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}, {"content-length", "3"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	f.Add(frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, hb))
	f.Add(append(frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, hb), frame(http2.FrameData, http2.FlagDataEndStream, 1, []byte("abc"))...))
	f.Add(append(frame(http2.FrameHeaders, 0, 1, hb[:3]), frame(http2.FrameContinuation, http2.FlagHeadersEndHeaders, 1, hb[3:])...))
	f.Add(append(frame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, hb), frame(http2.FrameRSTStream, 0, 1, []byte{0, 0, 0, 8})...))
	f.Add(frame(http2.FramePing, 0, 0, make([]byte, 8)))
	f.Add(frame(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 0, 1}))
	f.Add(frame(http2.FrameSettings, 0, 0, []byte{0, 4, 0, 0, 0, 10}))
	f.Add(frame(http2.FrameGoAway, 0, 0, make([]byte, 8)))
	f.Add(frame(http2.FramePriority, 0, 3, []byte{0, 0, 0, 3, 1}))
	srv := &Server{Handler: func(s *Stream) {
		_, _ = io.Copy(io.Discard, s)
		s.WriteHeader(200)
		s.AddTrailerString("x", "y")
		_, _ = s.Write([]byte("ok"))
		_ = s.End()
	}, Log: quietLog(), PrefaceTimeout: time.Second, IdleTimeout: time.Second}
	settings := frame(http2.FrameSettings, 0, 0, nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			srv.ServeConn(server, ConnInfo{Remote: &net.TCPAddr{}})
			close(done)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Write([]byte(http2.ClientPreface))
		_, _ = client.Write(settings)
		_, _ = client.Write(in)
		_ = client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection did not end")
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
