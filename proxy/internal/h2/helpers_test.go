package h2

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// testServer serves h2 on a loopback listener: cleartext (prior
// knowledge) or TLS with ALPN.
type testServer struct {
	t    testing.TB
	srv  *Server
	ln   net.Listener
	addr string
	tls  *tls.Config // the client's, nil on cleartext
	wg   sync.WaitGroup
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestServer(t testing.TB, h Handler, useTLS bool, opts ...func(*Server)) *testServer {
	t.Helper()
	srv := &Server{Handler: h, Log: quietLog()}
	for _, o := range opts {
		o(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv, ln: ln, addr: ln.Addr().String()}
	if useTLS {
		hs := httptest.NewUnstartedServer(nil)
		hs.EnableHTTP2 = true
		hs.StartTLS()
		cert := hs.TLS.Certificates[0]
		ts.tls = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		ts.tls.NextProtos = []string{"h2"}
		hs.Close()
		ts.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	}
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		for {
			c, err := ts.ln.Accept()
			if err != nil {
				return
			}
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				if tc, ok := c.(*tls.Conn); ok {
					if err := tc.Handshake(); err != nil {
						_ = c.Close()
						return
					}
					st := tc.ConnectionState()
					srv.ServeConn(c, ConnInfo{TLS: &st})
					return
				}
				srv.ServeConn(c, ConnInfo{})
			}()
		}
	}()
	t.Cleanup(ts.close)
	return ts
}

func (ts *testServer) close() {
	_ = ts.ln.Close()
	ts.srv.Close()
	ts.wg.Wait()
}

// client is an x/net/http2 Transport to the server.
func (ts *testServer) client() *http.Client {
	var protos http.Protocols
	tr := &http.Transport{Protocols: &protos, DisableCompression: true}
	if ts.tls != nil {
		protos.SetHTTP2(true)
		tr.TLSClientConfig = ts.tls
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	ts.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func (ts *testServer) url(path string) string {
	if ts.tls != nil {
		return "https://" + ts.addr + path
	}
	return "http://" + ts.addr + path
}

// checkGoroutines fails when goroutines stay above the baseline after
// the test's servers closed.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base+2 {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// echoHandler answers with the request's method and path, and echoes
// the body and the trailers.
func echoHandler(s *Stream) {
	body, err := io.ReadAll(s)
	if err != nil {
		return
	}
	s.WriteHeader(200)
	s.AddHeaderString("x-method", string(s.Method()))
	s.AddHeaderString("x-path", string(s.Path()))
	s.AddHeaderString("x-authority", string(s.Authority()))
	for i := range s.NumFields() {
		n, v := s.Field(i)
		if string(n) == "x-echo" {
			s.AddHeader([]byte("x-echoed"), v)
		}
	}
	_, _ = s.Write(body)
	for i := range s.NumTrailers() {
		n, v := s.Trailer(i)
		s.AddTrailer(n, v)
	}
	_ = s.End()
}
