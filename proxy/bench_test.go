package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/meridian-edge/meridian/config"
)

// rawResponse is what rawUpstream answers: 200 with a 64-byte body.
var rawResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" +
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

// rawUpstream is a minimal HTTP/1.1 keep-alive server for bodiless
// requests, written without net/http so that a benchmark's allocations are
// the proxy's own. It returns the server's URL.
func rawUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for { // request head, up to the empty line
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(bytes.TrimRight(line, "\r\n")) == 0 {
							break
						}
					}
					if _, err := c.Write(rawResponse); err != nil {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

func benchConfig(upstreamURL string) *config.Config {
	return &config.Config{
		Regions:  []config.Region{testRegion("local", upstreamURL)},
		Services: []config.Service{proxyService("bench", []string{testHost}, "local")},
	}
}

// BenchmarkProxy measures a GET through the whole stack: net/http's
// client, the proxy (net/http's server and ReverseProxy, or the fast
// path), a loopback upstream.
func BenchmarkProxy(b *testing.B) {
	for _, path := range []servePath{slowPath, fastPath} {
		b.Run(path.String(), func(b *testing.B) {
			h := newHarness(b, benchConfig(rawUpstream(b)), path)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := h.request(http.MethodGet, testHost, "/bench", nil)
				for pb.Next() {
					resp, err := h.c.Do(req)
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
}

// BenchmarkProxyRaw is BenchmarkProxy with a client that allocates
// nothing (fixed request bytes, responses checked by length), so that
// allocs/op are the proxy's own.
func BenchmarkProxyRaw(b *testing.B) {
	for _, path := range []servePath{slowPath, fastPath} {
		b.Run(path.String(), func(b *testing.B) {
			h := newHarness(b, benchConfig(rawUpstream(b)), path)
			// The response length, learnt from a first request.
			c := dialRaw(b, h.addr)
			c.send(benchRequest)
			var probe [4096]byte
			n, err := c.conn.Read(probe[:])
			if err != nil || !bytes.HasPrefix(probe[:n], []byte("HTTP/1.1 200 ")) {
				b.Fatalf("probe: %q %v", probe[:n], err)
			}
			// The Date field has a fixed length: every response has n bytes.
			b.SetParallelism(16) // connections per core, as a load generator keeps
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				conn, err := net.Dial("tcp", h.addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				req := []byte(benchRequest)
				buf := make([]byte, n)
				for pb.Next() {
					if _, err := conn.Write(req); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(conn, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

const benchRequest = "GET /bench HTTP/1.1\r\nHost: " + testHost + "\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"

// discardWriter is a reusable ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) Flush()                      {}

// BenchmarkProxyHandler measures the handler alone (routing, decision,
// forwarding, the upstream round trip), without the client and the
// server in front of it.
func BenchmarkProxyHandler(b *testing.B) {
	h := newHarness(b, benchConfig(rawUpstream(b)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, err := http.NewRequest(http.MethodGet, "http://"+testHost+"/bench", nil)
		if err != nil {
			b.Error(err)
			return
		}
		req.RemoteAddr = "192.0.2.1:4711"
		w := &discardWriter{h: make(http.Header)}
		for pb.Next() {
			clear(w.h)
			w.code = 0
			h.p.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Errorf("got status %d", w.code)
				return
			}
		}
	})
}
