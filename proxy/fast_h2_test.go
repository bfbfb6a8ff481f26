package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// h2cClient speaks HTTP/2 by prior knowledge.
func h2cClient(t testing.TB) *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestH2ShutdownDrains: Proxy.Shutdown sends GOAWAY on an HTTP/2
// connection, lets its stream in flight complete, and returns once the
// connection is gone.
func TestH2ShutdownDrains(t *testing.T) {
	upURL, arrived, release := heldUpstream(t)
	h := newHarness(t, cannedConfig(upURL), fastPath)
	cl := h2cClient(t)
	got := make(chan string, 1)
	go func() {
		resp, err := cl.Do(h.request(http.MethodGet, testHost, "/slow", nil))
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-arrived
	shut := shutdownAsync(h.p, 20*time.Second)
	pending(t, shut, 100*time.Millisecond)
	close(release)
	if body := <-got; body != "done" {
		t.Errorf("the stream in flight got %q, want done", body)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return after the stream completed")
	}
}

// TestH2WrapperHandler: HTTP/2 requests reach srv.Handler when it wraps
// the proxy, as ACME HTTP-01 answering does.
func TestH2WrapperHandler(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "proxied") })
	var h *harness
	h = newHarness(t, cannedConfig(up.URL), fastPath, func(s *http.Server) {
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				_, _ = io.WriteString(w, "token")
				return
			}
			h.p.ServeHTTP(w, r)
		})
	})
	cl := h2cClient(t)
	for path, want := range map[string]string{"/.well-known/acme-challenge/x": "token", "/": "proxied"} {
		resp, err := cl.Do(h.request(http.MethodGet, testHost, path, nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want || resp.ProtoMajor != 2 {
			t.Errorf("%s: got %s %q, want HTTP/2 %q", path, resp.Proto, b, want)
		}
	}
}

// BenchmarkH2Proxy measures a GET over HTTP/2 (h2c, an x/net client)
// through the proxy to a loopback upstream, served by the h2 engine or
// by net/http's HTTP/2 server.
func BenchmarkH2Proxy(b *testing.B) {
	for _, netHTTP := range []bool{false, true} {
		b.Run(h2ServerName(netHTTP), func(b *testing.B) {
			defer setH2NetHTTP(netHTTP)()
			h := newHarness(b, benchConfig(rawUpstream(b)), fastPath)
			cl := h2cClient(b)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := h.request(http.MethodGet, testHost, "/bench", nil)
				for pb.Next() {
					resp, err := cl.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}

// BenchmarkH2LoadCPU runs h2load (nghttp2-client) against the proxy, as
// the harness does at a small scale (-c 16 -m 8), and reports the
// server's CPU time per request: the test binary's own, which h2load's
// is not part of. It compares the h2 engine with net/http's HTTP/2
// server, over h2c and TLS.
func BenchmarkH2LoadCPU(b *testing.B) {
	if _, err := exec.LookPath("h2load"); err != nil {
		b.Skip("h2load is not installed (Debian: nghttp2-client)")
	}
	for _, useTLS := range []bool{false, true} {
		for _, netHTTP := range []bool{false, true} {
			name := "h2c/"
			if useTLS {
				name = "tls/"
			}
			b.Run(name+h2ServerName(netHTTP), func(b *testing.B) {
				defer setH2NetHTTP(netHTTP)()
				var tweaks []any
				scheme := "http"
				if useTLS {
					ln, tweak := benchTLSListener(b)
					tweaks = append(tweaks, ln, tweak)
					scheme = "https"
				}
				h := newHarness(b, benchConfig(rawUpstream(b)), append(tweaks, fastPath)...)
				url := scheme + "://" + h.addr + "/bench"
				run := func(n int) {
					out, err := exec.Command("h2load", "-n", strconv.Itoa(n), "-c", "16", "-m", "8", "-H", ":authority: "+testHost, url).CombinedOutput()
					if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d succeeded", n)) {
						b.Fatalf("h2load: %v\n%s", err, out)
					}
				}
				run(1000) // warm up the connections and pools
				n := max(b.N, 2000)
				before := cpuTime()
				b.ResetTimer()
				run(n)
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(n), "server-cpu-µs/req")
			})
		}
	}
}

func h2ServerName(netHTTP bool) string {
	if netHTTP {
		return "nethttp"
	}
	return "engine"
}

// setH2NetHTTP sets h2NetHTTP and returns what restores it.
func setH2NetHTTP(v bool) func() {
	old := h2NetHTTP
	h2NetHTTP = v
	return func() { h2NetHTTP = old }
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTLSListener is a TLS listener offering h2 with httptest's
// certificate.
func benchTLSListener(b *testing.B) (net.Listener, func(*http.Server)) {
	certSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	certSrv.EnableHTTP2 = true
	certSrv.StartTLS()
	b.Cleanup(certSrv.Close)
	tc := certSrv.TLS.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return tls.NewListener(inner, tc), func(s *http.Server) { s.TLSConfig = tc }
}
