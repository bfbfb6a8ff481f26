package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meridian-edge/meridian/config"
)

// h2Mode is how a client reaches the proxy over HTTP/2.
type h2Mode string

const (
	h2TLS h2Mode = "tls" // TLS with ALPN h2
	h2C   h2Mode = "h2c" // cleartext, by prior knowledge
)

var h2Modes = []h2Mode{h2TLS, h2C}

// forH2Modes runs f as a subtest for each way of reaching the proxy over
// HTTP/2.
func forH2Modes(t *testing.T, f func(t *testing.T, mode h2Mode)) {
	t.Helper()
	for _, m := range h2Modes {
		t.Run(string(m), func(t *testing.T) { f(t, m) })
	}
}

// h2Server is one proxy served by Serve on two loopback listeners: one
// with TLS (ALPN h2 and http/1.1, certificate for example.com) and one in
// cleartext, where HTTP/2 comes by prior knowledge. Whatever Serve does
// with HTTP/2 is what the tests of this suite hold to the protocol.
type h2Server struct {
	t     testing.TB
	p     *Proxy
	cfg   *config.Config
	reg   *prometheus.Registry
	rep   *fakeReporter
	addr  map[h2Mode]string
	srv   map[h2Mode]*http.Server
	roots *x509.CertPool
}

// serveH2 starts a proxy for cfg on a TLS listener and a cleartext one,
// both through Serve. Tweaks are func(*Options) (before New) and
// func(*http.Server) (for both servers, before they serve). The proxy is
// shut down when the test ends.
func serveH2(t *testing.T, cfg *config.Config, tweaks ...any) *h2Server {
	t.Helper()
	s := &h2Server{t: t, cfg: cfg, reg: prometheus.NewRegistry(), rep: &fakeReporter{},
		addr: map[h2Mode]string{}, srv: map[h2Mode]*http.Server{}}
	opts := Options{Logger: quietLogger(), Registerer: s.reg, Reporter: s.rep}
	for _, tw := range tweaks {
		switch f := tw.(type) {
		case func(*Options):
			f(&opts)
		case func(*http.Server):
		default:
			t.Fatalf("unknown tweak %T", tw)
		}
	}
	s.p = New(opts)
	if err := s.p.Update(Input{Config: cfg, Policy: policyFor(t, cfg, nil)}); err != nil {
		t.Fatalf("update: %v", err)
	}
	tc, roots := h2TLSConfig(t)
	s.roots = roots
	var done []chan struct{}
	for _, m := range h2Modes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.addr[m] = ln.Addr().String()
		srv := s.p.Server(ln.Addr().String())
		if m == h2TLS {
			srv.TLSConfig = tc
			ln = tls.NewListener(ln, tc)
		}
		for _, tw := range tweaks {
			if f, ok := tw.(func(*http.Server)); ok {
				f(srv)
			}
		}
		s.srv[m] = srv
		ch := make(chan struct{})
		done = append(done, ch)
		go func() {
			defer close(ch)
			if err := s.p.Serve(ln, srv); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("serving %s: %v", m, err)
			}
		}()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.p.Shutdown(ctx) // closes what is left when it gives up
		for _, ch := range done {
			<-ch
		}
		s.p.Close()
	})
	return s
}

// h2TLSConfig returns a server TLS config for example.com offering h2 and
// http/1.1, and the roots that trust it.
func h2TLSConfig(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	ln, tweak, roots := tlsListener(t)
	_ = ln.Close()
	var srv http.Server
	tweak(&srv)
	return srv.TLSConfig, roots
}

// h2Service is a proxy-mode service that also takes requests whose Host
// matches no service (the conformance cases send 127.0.0.1:port).
func h2Service(regions ...string) config.Service {
	svc := proxyService("api", []string{testHost}, regions...)
	svc.Proxy.Default = true
	return svc
}

// h2Config is a config of one default service over one region of urls.
func h2Config(urls ...string) *config.Config {
	return &config.Config{Regions: []config.Region{testRegion("eu", urls...)}, Services: []config.Service{h2Service("eu")}}
}

// url is the URL of path on the proxy for mode.
func (s *h2Server) url(mode h2Mode, path string) string {
	if mode == h2TLS {
		return "https://" + s.addr[mode] + path
	}
	return "http://" + s.addr[mode] + path
}

// transport returns an HTTP/2-only transport to the proxy for mode,
// closed when the test ends.
func (s *h2Server) transport(mode h2Mode) *http.Transport {
	var protos http.Protocols
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	if mode == h2TLS {
		protos.SetHTTP2(true)
		tr.TLSClientConfig = &tls.Config{RootCAs: s.roots, ServerName: "example.com"}
		tr.ForceAttemptHTTP2 = true
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	tr.Protocols = &protos
	s.t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// client returns an HTTP/2-only client of the proxy for mode.
func (s *h2Server) client(mode h2Mode) *http.Client {
	return &http.Client{Transport: s.transport(mode), Timeout: 20 * time.Second}
}

// request builds a request for host and path on the proxy for mode.
func (s *h2Server) request(mode h2Mode, method, host, path string, body io.Reader) *http.Request {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url(mode, path), body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Host = host
	return req
}

// dial opens a connection that speaks HTTP/2 from its first byte: TLS
// with h2 negotiated, or plain TCP for h2c.
func (s *h2Server) dial(t testing.TB, mode h2Mode) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	if mode == h2TLS {
		tc, err := tls.DialWithDialer(d, "tcp", s.addr[mode],
			&tls.Config{RootCAs: s.roots, ServerName: "example.com", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			tc.Close()
			t.Fatalf("negotiated %q, want h2", p)
		}
		conn = tc
	} else {
		c, err := d.Dial("tcp", s.addr[mode])
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// frameConn is a client of the proxy speaking HTTP/2 frame by frame.
type frameConn struct {
	t    testing.TB
	conn net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	// peer holds the server's SETTINGS once handshake has seen them.
	peer map[http2.SettingID]uint32
}

// dialFrames opens a connection for mode and sends the client preface.
// The server's frames are read with a 10s deadline unless changed.
func (s *h2Server) dialFrames(t testing.TB, mode h2Mode) *frameConn {
	t.Helper()
	conn := s.dial(t, mode)
	fc := &frameConn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), peer: map[http2.SettingID]uint32{}}
	fc.fr.AllowIllegalWrites = true
	fc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fc.fr.MaxHeaderListSize = 1 << 20
	fc.enc = hpack.NewEncoder(&fc.hbuf)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	return fc
}

// handshake sends SETTINGS (plus any given) and reads frames until the
// server's SETTINGS arrived and ours were acknowledged.
func (fc *frameConn) handshake(settings ...http2.Setting) {
	fc.t.Helper()
	if err := fc.fr.WriteSettings(settings...); err != nil {
		fc.t.Fatal(err)
	}
	var gotSettings, gotAck bool
	for !gotSettings || !gotAck {
		f := fc.read()
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			continue
		}
		if sf.IsAck() {
			gotAck = true
			continue
		}
		gotSettings = true
		_ = sf.ForeachSetting(func(s http2.Setting) error { fc.peer[s.ID] = s.Val; return nil })
		if err := fc.fr.WriteSettingsAck(); err != nil {
			fc.t.Fatal(err)
		}
	}
}

// read returns the next frame, failing the test on any error.
func (fc *frameConn) read() http2.Frame {
	fc.t.Helper()
	f, err := fc.readErr(10 * time.Second)
	if err != nil {
		fc.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// readErr returns the next frame or the error reading it within d.
func (fc *frameConn) readErr(d time.Duration) (http2.Frame, error) {
	if err := fc.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, err
	}
	return fc.fr.ReadFrame()
}

// block encodes fields as one header block.
func (fc *frameConn) block(fields ...string) []byte {
	fc.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = fc.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(fc.hbuf.Bytes())
}

// get opens stream id with a GET of path for host (end of stream set).
func (fc *frameConn) get(id uint32, host, path string, extra ...string) {
	fc.t.Helper()
	fc.headers(id, true, append([]string{":method", "GET", ":scheme", "https", ":authority", host, ":path", path}, extra...)...)
}

// headers sends one HEADERS frame with END_HEADERS carrying fields.
func (fc *frameConn) headers(id uint32, endStream bool, fields ...string) {
	fc.t.Helper()
	if err := fc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: fc.block(fields...),
		EndStream: endStream, EndHeaders: true}); err != nil {
		fc.t.Fatalf("writing HEADERS: %v", err)
	}
}

// response reads frames until stream id ended and returns its status,
// body and the frames of other kinds it saw on the way (other streams'
// frames are dropped). A RST_STREAM on the stream ends it with status -1.
func (fc *frameConn) response(id uint32) (status int, body []byte, rst http2.ErrCode) {
	fc.t.Helper()
	for {
		f := fc.read()
		if f.Header().StreamID != id {
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				fc.t.Fatalf("GOAWAY %v waiting for stream %d", ga.ErrCode, id)
			}
			continue
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" && status == 0 || st != "" && status < 200 {
				status, _ = strconv.Atoi(st)
			}
			if f.StreamEnded() {
				return status, body, 0
			}
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			if n := len(f.Data()); n > 0 {
				_ = fc.fr.WriteWindowUpdate(0, uint32(n))
				_ = fc.fr.WriteWindowUpdate(id, uint32(n))
			}
			if f.StreamEnded() {
				return status, body, 0
			}
		case *http2.RSTStreamFrame:
			return -1, body, f.ErrCode
		}
	}
}

// closedOrGoAway reads until the server sends GOAWAY or closes the
// connection, within d; it returns the GOAWAY (nil when the connection
// just closed) and whether either happened.
func (fc *frameConn) closedOrGoAway(d time.Duration) (*http2.GoAwayFrame, bool) {
	fc.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, false
		}
		f, err := fc.readErr(left)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, false
			}
			return nil, true // closed or reset
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			return ga, true
		}
	}
}

// serverGoroutines counts the process's goroutines but those of idle
// pooled connections between the proxy and its upstreams (the proxy's
// transport and the upstream servers' idle keep-alive reads), which the
// pool holds by design and closes on its own timer; it returns the stack
// dump too.
func serverGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "net/http.(*conn).readRequest") {
			continue
		}
		count++
	}
	return count, string(buf)
}

// goroutinesSettle waits until serverGoroutines is no more than
// base+slack, within d, and fails the test otherwise.
func goroutinesSettle(t testing.TB, base, slack int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n, stacks := serverGoroutines()
		if n <= base+slack {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after %v, baseline %d (+%d allowed)\n%s", n, d, base, slack, stacks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wellBehaved checks that a new, well-behaved HTTP/2 client of mode gets
// an answer from the upstream through the proxy.
func (s *h2Server) wellBehaved(t testing.TB, mode h2Mode, want string) {
	t.Helper()
	tr := s.transport(mode)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Do(s.request(mode, http.MethodGet, testHost, "/ok", nil))
	if err != nil {
		t.Fatalf("a well-behaved client: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 || (want != "" && string(b) != want) {
		t.Fatalf("a well-behaved client got %s %d %q (%v), want HTTP/2 200 %q", resp.Proto, resp.StatusCode, b, err, want)
	}
}
