package h2

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestRapidReset: streams opened and reset at once (CVE-2023-44487) end
// the connection with ENHANCE_YOUR_CALM, and their handlers are
// cancelled.
func TestRapidReset(t *testing.T) {
	checkGoroutines(t)
	var running, cancelled atomic.Int64
	ts := newTestServer(t, func(s *Stream) {
		running.Add(1)
		defer running.Add(-1)
		select {
		case <-s.Done():
			cancelled.Add(1)
		case <-time.After(20 * time.Second):
		}
	}, false)
	r := dialRaw(t, ts.addr)
	// The first stream's handler is running before its reset, so that at
	// least one is cancelled however the flood's resets race their
	// handlers (a stream reset before its handler starts has none to
	// cancel).
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(get("/")...), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first handler to run", func() bool { return running.Load() == 1 })
	go func() {
		if r.fr.WriteRSTStream(1, http2.ErrCodeCancel) != nil {
			return
		}
		for id := uint32(3); id < 20000; id += 2 {
			if r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(get("/")...), EndStream: true, EndHeaders: true}) != nil ||
				r.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	r.wantGoAway(http2.ErrCodeEnhanceYourCalm)
	waitUntil(t, "handlers to end", func() bool { return running.Load() == 0 })
	if n := cancelled.Load(); n == 0 || n > 2*DefaultResetBudget {
		t.Errorf("%d handlers were cancelled, want some and at most about the budget", n)
	}
}

// TestStreamsBeyondTheLimitRefused: a stream past
// MAX_CONCURRENT_STREAMS is refused; the open ones go on.
func TestStreamsBeyondTheLimitRefused(t *testing.T) {
	block := make(chan struct{})
	ts := newTestServer(t, waitThenOK(block), false, func(s *Server) { s.MaxConcurrentStreams = 4 })
	r := dialRaw(t, ts.addr)
	for id := uint32(1); id <= 9; id += 2 {
		r.headers(id, true, get("/")...)
	}
	r.wantReset(9, http2.ErrCodeRefusedStream)
	close(block)
	ended := map[uint32]bool{}
	for len(ended) < 4 {
		f := r.next()
		if f == nil {
			t.Fatalf("connection closed with streams %v ended", ended)
		}
		if f.Header().Flags.Has(http2.FlagDataEndStream) && f.Header().Type == http2.FrameData {
			ended[f.Header().StreamID] = true
		}
	}
	for id := uint32(1); id <= 7; id += 2 {
		if !ended[id] {
			t.Errorf("stream %d did not complete", id)
		}
	}
}

// TestContinuationFlood: a header block that never ends is cut off
// with bounded bytes read.
func TestContinuationFlood(t *testing.T) {
	checkGoroutines(t)
	ts := newTestServer(t, okHandler, false)
	r := dialRaw(t, ts.addr)
	done := make(chan int)
	go func() {
		sent := 0
		_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(get("/")...)})
		chunk := r.block("x-a", strings.Repeat("a", 1000))
		for sent < 64<<20 {
			if r.fr.WriteContinuation(1, false, chunk) != nil {
				break
			}
			sent += len(chunk)
		}
		done <- sent
	}()
	r.wantGoAway(http2.ErrCodeEnhanceYourCalm)
	_ = r.c.Close()
	if sent := <-done; sent >= 64<<20 {
		t.Errorf("the server read %d bytes of one header block", sent)
	}
}

// TestEmptyContinuationFlood: empty CONTINUATION frames end the
// connection too.
func TestEmptyContinuationFlood(t *testing.T) {
	ts := newTestServer(t, okHandler, false)
	r := dialRaw(t, ts.addr)
	go func() {
		_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(get("/")...)})
		for range 1 << 20 {
			if r.fr.WriteContinuation(1, false, nil) != nil {
				return
			}
		}
	}()
	r.wantGoAway(http2.ErrCodeEnhanceYourCalm)
}

// TestHPACKBomb: a large dynamic-table entry referenced over and over
// decodes to far more than the header list limit: the request gets 431
// and the memory stays bounded.
func TestHPACKBomb(t *testing.T) {
	called := make(chan struct{}, 1)
	ts := newTestServer(t, func(s *Stream) { called <- struct{}{}; okHandler(s) }, false)
	r := dialRaw(t, ts.addr)
	// One 4000-byte entry into the table, then 15000 one-byte references
	// to it: 60 MB decoded from 15 KB.
	r.hbuf.Reset()
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "a"}, {Name: ":path", Value: "/"}} {
		_ = r.enc.WriteField(hf)
	}
	_ = r.enc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
	block := r.hbuf.Bytes()
	idx := byte(0x80 | 62) // the entry just added
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range 15000 {
		block = append(block, idx)
		_ = i
	}
	_ = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:16000], EndStream: true})
	_ = r.fr.WriteContinuation(1, true, block[16000:])
	if st := r.status(1); st != "431" {
		t.Fatalf("got %q, want 431", st)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
		t.Errorf("heap grew by %d bytes", grew)
	}
	select {
	case <-called:
		t.Error("the handler saw the bomb")
	default:
	}
}

// TestPingFloodWithoutReading: a client that sends PINGs and never
// reads is cut off, with the queued replies bounded.
func TestPingFloodWithoutReading(t *testing.T) {
	checkGoroutines(t)
	ts := newTestServer(t, okHandler, false)
	r := dialRaw(t, ts.addr)
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 5_000_000 && err == nil; i++ {
			err = r.fr.WritePing(false, [8]byte{byte(i)})
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the server took 5M PINGs it could not answer")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the PING flood is still going")
	}
}

// TestSettingsFloodWithoutReading: the same with SETTINGS frames.
func TestSettingsFloodWithoutReading(t *testing.T) {
	ts := newTestServer(t, okHandler, false)
	r := dialRaw(t, ts.addr)
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 5_000_000 && err == nil; i++ {
			err = r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(i)})
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the server took 5M SETTINGS it could not acknowledge")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the SETTINGS flood is still going")
	}
}

// TestEmptyDataFlood: DATA frames that carry nothing end the connection.
func TestEmptyDataFlood(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	ts := newTestServer(t, waitThenOK(block), false)
	r := dialRaw(t, ts.addr)
	r.headers(1, false, get("/")...)
	go func() {
		for range 100000 {
			if r.fr.WriteData(1, false, nil) != nil {
				return
			}
		}
	}()
	r.wantGoAway(http2.ErrCodeEnhanceYourCalm)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
