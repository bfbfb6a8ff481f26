package proxy

import (
	"io"
	"net/http"
	"net/netip"
	"testing"
)

// BenchmarkH2 measures a GET from an HTTP/2 client (golang.org/x/net/http2
// over h2c and over TLS) through net/http's HTTP/2 server and the proxy to
// a loopback HTTP/1.1 upstream; "seam" calls ServePlain directly with a
// request and a sink that allocate nothing, as a frame-level HTTP/2 server
// would, so that its allocs/op are ServePlain's own.
func BenchmarkH2(b *testing.B) {
	for _, mode := range []h2Mode{h2C, h2TLS} {
		b.Run(string(mode), func(b *testing.B) {
			hh := newH2Harness(b, benchConfig(rawUpstream(b)), mode)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := hh.request(http.MethodGet, testHost, "/bench", nil)
				for pb.Next() {
					resp, err := hh.h2.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("got status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
	b.Run("seam", func(b *testing.B) {
		h := newHarness(b, benchConfig(rawUpstream(b)), fastPath)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			hdr := &benchFields{f: [][2][]byte{
				{[]byte("user-agent"), []byte("bench")},
				{[]byte("accept"), []byte("*/*")},
			}}
			rq := &PlainRequest{
				Method: []byte("GET"), Target: []byte("/bench"), Authority: []byte(testHost),
				Header: hdr, Peer: netip.MustParseAddr("127.0.0.1"),
			}
			sink := &benchSink{}
			for pb.Next() {
				sink.code, sink.n = 0, 0
				if !h.p.ServePlain(rq, sink) || sink.code != http.StatusOK || sink.n != 64 {
					b.Errorf("got status %d with %d bytes, want 200 with 64", sink.code, sink.n)
					return
				}
			}
		})
	})
}

// benchFields is a header list of fixed fields.
type benchFields struct{ f [][2][]byte }

func (h *benchFields) Len() int                         { return len(h.f) }
func (h *benchFields) Field(i int) (name, value []byte) { return h.f[i][0], h.f[i][1] }

// benchSink is a PlainResponse that counts what it is given.
type benchSink struct {
	code int
	n    int
}

func (s *benchSink) WriteHead(code int, _ *ResponseFields) error { s.code = code; return nil }
func (s *benchSink) Write(p []byte) (int, error)                 { s.n += len(p); return len(p), nil }
func (s *benchSink) Flush() error                                { return nil }
func (s *benchSink) WriteTrailers(*ResponseFields) error         { return nil }
func (s *benchSink) Abort()                                      {}
func (s *benchSink) Done() <-chan struct{}                       { return nil }
