package h2

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var benchBody = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

func benchHandler(s *Stream) {
	s.WriteHeader(200)
	s.AddHeaderString("content-type", "text/plain")
	_, _ = s.Write(benchBody)
	_ = s.End()
}

// BenchmarkEngine measures the engine alone: a raw client keeps 8
// streams in flight on each connection (a GET each, answered 200 with 64
// bytes by a native handler), as h2load -m 8 does.
func BenchmarkEngine(b *testing.B) {
	ts := newTestServer(b, benchHandler, false)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		fr := http2.NewFramer(c, c)
		fr.SetReuseFrames()
		_, _ = c.Write([]byte(http2.ClientPreface))
		_ = fr.WriteSettings()
		_ = fr.WriteSettingsAck()
		_ = fr.WriteWindowUpdate(0, 1<<30)
		received := 0
		block := newRawBlock(get("/bench")...)
		id := uint32(1)
		for more := true; more; {
			n := 0
			for n < 8 && pb.Next() {
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
					b.Error(err)
					return
				}
				id += 2
				n++
			}
			more = n == 8
			for n > 0 {
				f, err := fr.ReadFrame()
				if err != nil {
					b.Error(err)
					return
				}
				if f.Header().Type != http2.FrameData {
					continue
				}
				if received += int(f.Header().Length); received > 1<<20 {
					_ = fr.WriteWindowUpdate(0, uint32(received))
					received = 0
				}
				if f.Header().Flags.Has(http2.FlagDataEndStream) {
					n--
				}
			}
		}
	})
}

func newRawBlock(kv ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(kv); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return buf.Bytes()
}

// BenchmarkEngineH2Load runs h2load (nghttp2-client) against the engine
// with a native handler, the engine with an http.Handler through
// ServeHTTP, and net/http's HTTP/2 server with the same http.Handler,
// and reports the server's CPU time per request (this process's; h2load
// is a child and not counted).
func BenchmarkEngineH2Load(b *testing.B) {
	if _, err := exec.LookPath("h2load"); err != nil {
		b.Skip("h2load is not installed (Debian: nghttp2-client)")
	}
	hf := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(benchBody)
	})
	for _, mode := range []string{"native", "adapter", "nethttp"} {
		b.Run(mode, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var serve func(net.Conn)
			switch mode {
			case "native":
				srv := &Server{Handler: benchHandler, Log: quietLog()}
				serve = func(c net.Conn) { srv.ServeConn(c, ConnInfo{}) }
				defer srv.Close()
			case "adapter":
				srv := &Server{Handler: func(s *Stream) { ServeHTTP(s, hf) }, Log: quietLog()}
				serve = func(c net.Conn) { srv.ServeConn(c, ConnInfo{}) }
				defer srv.Close()
			case "nethttp":
				var protos http.Protocols
				protos.SetUnencryptedHTTP2(true)
				hs := &http.Server{Handler: hf, Protocols: &protos, ReadHeaderTimeout: 10 * time.Second, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 250}}
				go func() { _ = hs.Serve(ln) }()
				defer hs.Close()
			}
			if serve != nil {
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go serve(c)
					}
				}()
				defer ln.Close()
			}
			url := "http://" + ln.Addr().String() + "/"
			run := func(n int) {
				out, err := exec.Command("h2load", "-n", strconv.Itoa(n), "-c", "16", "-m", "8", url).CombinedOutput()
				if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d succeeded", n)) {
					b.Fatalf("h2load: %v\n%s", err, out)
				}
			}
			run(1000)
			n := max(b.N, 2000)
			before := cpuTime()
			b.ResetTimer()
			run(n)
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(n), "server-cpu-µs/req")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
