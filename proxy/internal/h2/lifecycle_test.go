package h2

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestGracefulShutdown: Shutdown sends GOAWAY naming the last stream;
// the streams in flight complete, then the connection closes.
func TestGracefulShutdown(t *testing.T) {
	checkGoroutines(t)
	block, arrived := make(chan struct{}), make(chan struct{}, 2)
	ts := newTestServer(t, func(s *Stream) { arrived <- struct{}{}; waitThenOK(block)(s) }, false)
	r := dialRaw(t, ts.addr)
	r.headers(1, true, get("/")...)
	r.headers(3, true, get("/")...)
	<-arrived
	<-arrived
	ts.srv.Shutdown()
	f := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	g, ok := f.(*http2.GoAwayFrame)
	if !ok || g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 3 {
		t.Fatalf("got %v, want GOAWAY NO_ERROR with last stream 3", f)
	}
	r.headers(5, true, get("/")...) // after GOAWAY: ignored
	close(block)
	ended := map[uint32]bool{}
	for {
		f := r.next()
		if f == nil {
			break
		}
		if f.Header().Type == http2.FrameData && f.Header().Flags.Has(http2.FlagDataEndStream) {
			ended[f.Header().StreamID] = true
		}
		if f.Header().StreamID == 5 {
			t.Errorf("stream 5, opened after GOAWAY, got %v", f)
		}
	}
	if !ended[1] || !ended[3] {
		t.Errorf("streams ended: %v, want 1 and 3", ended)
	}
	waitUntil(t, "the connection to be gone", func() bool { return ts.srv.Conns() == 0 })
}

func TestIdleTimeout(t *testing.T) {
	ts := newTestServer(t, okHandler, false, func(s *Server) { s.IdleTimeout = 300 * time.Millisecond })
	r := dialRaw(t, ts.addr)
	r.headers(1, true, get("/")...)
	if st := r.status(1); st != "200" {
		t.Fatal(st)
	}
	start := time.Now()
	r.wantGoAway(http2.ErrCodeNo)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("closed after %v", d)
	}
}

// TestResetCancelsHandler: RST_STREAM from the client closes Done, and
// the handler's reads and writes fail.
func TestResetCancelsHandler(t *testing.T) {
	checkGoroutines(t)
	got := make(chan error, 1)
	ts := newTestServer(t, func(s *Stream) {
		<-s.Done()
		_, err := s.Read(make([]byte, 10))
		if err == nil {
			err = s.Flush()
		}
		got <- err
	}, false)
	r := dialRaw(t, ts.addr)
	r.headers(1, false, get("/")...)
	_ = r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case err := <-got:
		if err != ErrStreamReset {
			t.Errorf("got %v, want ErrStreamReset", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler did not see the reset")
	}
}

// TestFlowControlBlocksOneStream: a stream out of window waits while
// another stream's response goes out; a WINDOW_UPDATE releases it.
func TestFlowControlBlocksOneStream(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1000)
	ts := newTestServer(t, func(s *Stream) {
		s.WriteHeader(200)
		if string(s.Path()) == "/big" {
			_, _ = s.Write(big)
		} else {
			_, _ = s.Write([]byte("small"))
		}
		_ = s.End()
	}, false)
	r := dialRaw(t, ts.addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	r.headers(1, true, get("/big")...)
	got := 0
	for got < 100 {
		if d, ok := r.next().(*http2.DataFrame); ok && d.StreamID == 1 {
			got += len(d.Data())
		}
	}
	if got != 100 {
		t.Fatalf("got %d bytes past a window of 100", got)
	}
	r.headers(3, true, get("/small")...)
	f := r.until(func(f http2.Frame) bool { return f.Header().Type == http2.FrameData })
	if d := f.(*http2.DataFrame); d.StreamID != 3 || string(d.Data()) != "small" || !d.StreamEnded() {
		t.Fatalf("got %v, want stream 3's body while 1 waits", f)
	}
	_ = r.fr.WriteWindowUpdate(1, 900)
	for got < 1000 {
		d, ok := r.next().(*http2.DataFrame)
		if ok && d.StreamID == 1 {
			got += len(d.Data())
			if d.StreamEnded() && got != 1000 {
				t.Fatalf("stream 1 ended after %d bytes", got)
			}
		}
	}
}

// TestRequestWindowsReturned: a body larger than both windows arrives
// whole, so WINDOW_UPDATEs were sent as the handler read it.
func TestRequestWindowsReturned(t *testing.T) {
	ts := newTestServer(t, func(s *Stream) {
		n, _ := io.Copy(io.Discard, s)
		s.WriteHeader(200)
		_, _ = s.Write([]byte(strings.Repeat("n", int(n%7))))
		_ = s.End()
	}, false, func(s *Server) { s.StreamWindow, s.ConnWindow = 70000, 70000 })
	resp, err := ts.client().Post(ts.url("/"), "", bytes.NewReader(make([]byte, 5<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
}

// TestResponseSplitByMaxFrameSize: no DATA frame exceeds the client's
// SETTINGS_MAX_FRAME_SIZE.
func TestResponseSplitByMaxFrameSize(t *testing.T) {
	body := bytes.Repeat([]byte("y"), 40000)
	ts := newTestServer(t, func(s *Stream) { s.WriteHeader(200); _, _ = s.Write(body); _ = s.End() }, false)
	r := dialRaw(t, ts.addr)
	r.headers(1, true, get("/")...)
	var total int
	for {
		d, ok := r.next().(*http2.DataFrame)
		if !ok {
			continue
		}
		if len(d.Data()) > 16384 {
			t.Fatalf("a DATA frame of %d bytes", len(d.Data()))
		}
		total += len(d.Data())
		if total >= 40000 || d.StreamEnded() {
			break
		}
	}
	if total != 40000 {
		t.Fatalf("got %d bytes", total)
	}
}

// TestHeaderTableSizeChange: after the client shrinks its table, the
// next header block opens with a size update, which x/net's decoder
// requires.
func TestHeaderTableSizeChange(t *testing.T) {
	ts := newTestServer(t, okHandler, false)
	r := dialRaw(t, ts.addr, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	r.headers(1, true, get("/")...)
	f := r.until(func(f http2.Frame) bool { return f.Header().Type == http2.FrameHeaders })
	if b := f.(*http2.HeadersFrame).HeaderBlockFragment(); len(b) == 0 || b[0]&0xe0 != 0x20 {
		t.Fatalf("block %x does not open with a size update", b)
	}
}

func TestServeHTTPAdapter(t *testing.T) {
	checkGoroutines(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Declared")
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Cookie", r.Header.Get("Cookie"))
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-In"))
		w.Header().Set("X-Proto", r.Proto)
		w.WriteHeader(201)
		_, _ = w.Write(body)
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte("!"))
		w.Header().Set("X-Declared", "d")
		w.Header().Set(http.TrailerPrefix+"X-Late", "l")
	})
	ts := newTestServer(t, func(s *Stream) { ServeHTTP(s, h) }, true)
	req, _ := http.NewRequest(http.MethodPost, ts.url("/x?y=1"), io.MultiReader(strings.NewReader("body")))
	req.Header.Add("Cookie", "a=1")
	req.Header.Add("Cookie", "b=2")
	req.Trailer = http.Header{"X-In": {"t"}}
	resp, err := ts.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(body) != "body!" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	for k, want := range map[string]string{"X-Host": ts.addr, "X-Cookie": "a=1; b=2", "X-Req-Trailer": "t", "X-Proto": "HTTP/2.0"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if resp.Trailer.Get("X-Declared") != "d" || resp.Trailer.Get("X-Late") != "l" {
		t.Errorf("trailers %v", resp.Trailer)
	}

	// A short answer gets Content-Length, Content-Type and Date.
	ts2 := newTestServer(t, func(s *Stream) {
		ServeHTTP(s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>hi</html>") }))
	}, false)
	resp, err = ts2.client().Get(ts2.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != 15 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Date") == "" {
		t.Errorf("got length %d, head %v", resp.ContentLength, resp.Header)
	}
}

func TestServeHTTPPanicResetsStream(t *testing.T) {
	ts := newTestServer(t, func(s *Stream) {
		ServeHTTP(s, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	}, false)
	r := dialRaw(t, ts.addr)
	r.headers(1, true, get("/")...)
	r.wantReset(1, http2.ErrCodeInternal)
	r.headers(3, true, get("/")...)
	r.wantReset(3, http2.ErrCodeInternal) // the connection lives on
}

// TestReadDeadline: a body that does not come fails the read at the
// deadline, and the connection serves on.
func TestReadDeadline(t *testing.T) {
	got := make(chan error, 1)
	ts := newTestServer(t, func(s *Stream) {
		_ = s.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := s.Read(make([]byte, 10))
		got <- err
		okHandler(s)
	}, false)
	r := dialRaw(t, ts.addr)
	r.headers(1, false, get("/")...)
	select {
	case err := <-got:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the read did not end at its deadline")
	}
	if st := r.status(1); st != "200" {
		t.Fatalf("got %q", st)
	}
}

// TestGoAwayAfterResetOfLastStream: when a client resets the last stream
// of a connection going away, the connection closes.
func TestGoAwayAfterResetOfLastStream(t *testing.T) {
	arrived := make(chan struct{}, 1)
	ts := newTestServer(t, func(s *Stream) { arrived <- struct{}{}; <-s.Done() }, false)
	r := dialRaw(t, ts.addr)
	r.headers(1, true, get("/")...)
	<-arrived
	ts.srv.Shutdown()
	r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	_ = r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	if !r.closed() {
		t.Fatal("the connection stayed open")
	}
}

// TestPingDeadClient: a connection with a stream open whose client
// answers no PING is closed, and the handler sees its stream end; one
// whose client answers stays.
func TestPingDeadClient(t *testing.T) {
	ping := func(s *Server) { s.PingAfter, s.PingTimeout = 100*time.Millisecond, 100*time.Millisecond }
	ended := make(chan struct{})
	ts := newTestServer(t, func(s *Stream) { <-s.Done(); close(ended) }, false, ping)
	r := dialRaw(t, ts.addr)
	r.headers(1, true, get("/")...)
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream of a client that answers no PING is still open")
	}

	alive := newTestServer(t, func(s *Stream) {
		select {
		case <-time.After(time.Second):
			okHandler(s)
		case <-s.Done():
		}
	}, false, ping)
	resp, err := alive.client().Get(alive.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
}
