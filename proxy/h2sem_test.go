package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meridian-edge/meridian/config"
)

// HTTP/2 semantics through the proxy to real upstream servers.

// countingTransport is an HTTP/2 transport to the proxy that counts the
// connections it opens.
func (s *h2Server) countingTransport(mode h2Mode, dials *atomic.Int64) *http.Transport {
	tr := s.transport(mode)
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

// TestH2ParallelStreams: many requests on one connection run at the same
// time upstream (each waits until all arrived) and each gets its own
// answer.
func TestH2ParallelStreams(t *testing.T) {
	const n = 32
	var arrived sync.WaitGroup
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		done := make(chan struct{})
		go func() { arrived.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			http.Error(w, "not all requests arrived together", http.StatusGatewayTimeout)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.URL.Path) //nolint:gosec // G705: a test upstream's plain-text echo
	})
	s := serveH2(t, h2Config(up.URL))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		arrived.Add(n)
		var dials atomic.Int64
		c := &http.Client{Transport: s.countingTransport(mode, &dials), Timeout: 30 * time.Second}
		// One request first, so that the others share its connection.
		errs := make(chan error, n)
		for i := range n {
			go func() {
				path := fmt.Sprintf("/p%d", i)
				resp, err := c.Do(s.request(mode, http.MethodGet, testHost, path, nil))
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err == nil && (resp.StatusCode != 200 || string(b) != path || resp.ProtoMajor != 2) {
					err = fmt.Errorf("%s: got %s %d %q", path, resp.Proto, resp.StatusCode, b)
				}
				errs <- err
			}()
			if i == 0 {
				time.Sleep(50 * time.Millisecond) // the others find its connection
			}
		}
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if d := dials.Load(); d > 2 {
			t.Errorf("the client opened %d connections for %d parallel requests, want them on one", d, n)
		}
	})
}

// TestH2LargeBodies: request and response bodies much larger than the
// initial flow-control windows pass whole both ways, in parallel on one
// connection.
func TestH2LargeBodies(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(body)
		w.Header().Set("X-Got-Sha256", hex.EncodeToString(sum[:]))
		w.Header().Set("X-Got-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body) // echoed: as large on the way back
	})
	s := serveH2(t, h2Config(up.URL))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		c := s.client(mode)
		sizes := []int{65535, 65536, 1 << 20, 5<<20 + 7}
		var wg sync.WaitGroup
		for i, size := range sizes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := bytes.Repeat([]byte{byte('a' + i)}, size)
				body[size/2] = 'z'
				sum := sha256.Sum256(body)
				resp, err := c.Do(s.request(mode, http.MethodPost, testHost, "/echo", bytes.NewReader(body)))
				if err != nil {
					t.Errorf("%d bytes: %v", size, err)
					return
				}
				defer resp.Body.Close()
				back, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Errorf("%d bytes: reading the answer: %v", size, err)
					return
				}
				if got := resp.Header.Get("X-Got-Sha256"); got != hex.EncodeToString(sum[:]) {
					t.Errorf("%d bytes: the upstream got %s bytes with another hash", size, resp.Header.Get("X-Got-Length"))
				}
				if !bytes.Equal(back, body) {
					t.Errorf("%d bytes: got %d bytes back, not the same", size, len(back))
				}
			}()
		}
		wg.Wait()
	})
}

// TestH2GRPC: a real gRPC server behind the proxy (https endpoint, HTTP/2
// by ALPN), called by a real gRPC client over TLS and over h2c: unary
// calls whose status travels in trailers, success and error alike, and a
// server stream.
func TestH2GRPC(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	up := httptest.NewUnstartedServer(gs)
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(func() { up.Close(); gs.Stop() })
	upRoots := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	s := serveH2(t, h2Config(up.URL), func(o *Options) { o.UpstreamTLS = &tls.Config{RootCAs: upRoots} })
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		creds := insecure.NewCredentials()
		if mode == h2TLS {
			creds = credentials.NewTLS(&tls.Config{RootCAs: s.roots, ServerName: "example.com"})
		}
		// The service is the default one: whatever :authority the
		// client sends (the address, or example.com over TLS) reaches it.
		cc, err := grpc.NewClient("passthrough:///"+s.addr[mode], grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		client := healthpb.NewHealthClient(cc)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "up"})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(up): got %v, %v, want SERVING", resp.GetStatus(), err)
		}
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nobody"}); status.Code(err) != codes.NotFound {
			t.Errorf("Check(nobody): got %v, want the NotFound status from the trailers", err)
		}
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "up"})
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch: first message %v, %v", first.GetStatus(), err)
		}
		hs.SetServingStatus("up", healthpb.HealthCheckResponse_NOT_SERVING)
		defer hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
		second, err := stream.Recv()
		if err != nil || second.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("Watch: second message %v, %v, want NOT_SERVING streamed", second.GetStatus(), err)
		}
	})
}

// TestH2TrailersFromH2CUpstream: trailers a plain HTTP/1.1 upstream sends
// (announced and not) reach an HTTP/2 client as trailers.
func TestH2Trailers(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	})
	s := serveH2(t, h2Config(up.URL))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		req := s.request(mode, http.MethodGet, testHost, "/", nil)
		req.Header.Set("Te", "trailers")
		resp, err := s.client(mode).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "body" || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
			t.Errorf("got %q with trailers %v, want body with X-Sum 42 and X-Late yes", b, resp.Trailer)
		}
	})
}

// TestH2NoServerPush: the proxy never sends PUSH_PROMISE, even to a
// client that allows push and to an upstream that announces preloads; a
// client's PUSH_PROMISE is a connection error (RFC 9113 section 8.4).
func TestH2NoServerPush(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Link", "</style.css>; rel=preload; as=style")
		_, _ = io.WriteString(w, "<html>")
	})
	s := serveH2(t, h2Config(up.URL))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		fc := s.dialFrames(t, mode)
		fc.handshake(http2.Setting{ID: http2.SettingEnablePush, Val: 1})
		fc.get(1, testHost, "/")
		ended := false
		for !ended {
			switch f := fc.read().(type) {
			case *http2.PushPromiseFrame:
				t.Fatalf("the server sent PUSH_PROMISE for stream %d", f.PromiseID)
			case *http2.DataFrame:
				ended = f.StreamID == 1 && f.StreamEnded()
			case *http2.MetaHeadersFrame:
				ended = f.StreamID == 1 && f.StreamEnded()
			}
		}
		if err := fc.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2,
			BlockFragment: fc.block(":method", "GET", ":scheme", "https", ":authority", testHost, ":path", "/x"), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		ga, closed := fc.closedOrGoAway(10 * time.Second)
		if !closed || ga != nil && ga.ErrCode != http2.ErrCodeProtocol {
			t.Errorf("a client's PUSH_PROMISE: got GOAWAY %v (closed %v), want a PROTOCOL_ERROR connection error", ga, closed)
		}
	})
}

// TestH2GoAwayOnShutdown: Shutdown sends GOAWAY to an HTTP/2 connection
// with a stream in flight; that stream completes, a stream opened after
// the GOAWAY is not served (nor forwarded), and the connection closes.
func TestH2GoAwayOnShutdown(t *testing.T) {
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		up := newAttackUpstream(t)
		s := serveH2(t, h2Config(up.URL))
		fc := s.dialFrames(t, mode)
		fc.handshake()
		fc.get(1, testHost, "/hold")
		waitFor(t, "the upstream to get the request", 10*time.Second, func() bool { return up.active.Load() == 1 })
		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			shut <- s.p.Shutdown(ctx)
		}()
		var ga *http2.GoAwayFrame
		for ga == nil {
			switch f := fc.read().(type) {
			case *http2.GoAwayFrame:
				g := *f // frames are only valid until the next read
				ga = &g
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = fc.fr.WritePing(true, f.Data)
				}
			}
		}
		if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID < 1 {
			t.Errorf("got GOAWAY %v last stream %d, want NO_ERROR covering stream 1", ga.ErrCode, ga.LastStreamID)
		}
		// A server may announce the shutdown with a last stream of
		// 2^31-1 first and send the real one a round trip later (RFC
		// 9113 section 6.8): wait for that one.
		for last := ga.LastStreamID; last > 1; {
			if f, ok := fc.read().(*http2.GoAwayFrame); ok {
				last = f.LastStreamID
				if last > ga.LastStreamID {
					t.Fatalf("a second GOAWAY raised the last stream from %d to %d", ga.LastStreamID, last)
				}
				ga.LastStreamID = last
			}
		}
		// A new stream after the GOAWAY: refused or ignored, never
		// forwarded.
		late := max(ga.LastStreamID+2, 3) | 1
		fc.get(late, testHost, "/")
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a stream in flight", err)
		case <-time.After(100 * time.Millisecond):
		}
		up.free()
		var status int
		var body []byte
		for ended := false; !ended; {
			f := fc.read()
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				switch f.StreamID {
				case 1:
					status = atoiOr(f.PseudoValue("status"), -1)
					ended = f.StreamEnded()
				case late:
					t.Errorf("stream %d opened after GOAWAY was answered %s", late, f.PseudoValue("status"))
				}
			case *http2.DataFrame:
				if f.StreamID == 1 {
					body = append(body, f.Data()...)
					ended = f.StreamEnded()
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == 1 {
					t.Fatalf("the stream in flight was reset (%v)", f.ErrCode)
				}
			}
		}
		if status != 200 || string(body) != "ok" {
			t.Errorf("the stream in flight: got %d %q, want 200 ok", status, body)
		}
		if n := up.requests.Load(); n != 1 {
			t.Errorf("the upstream got %d requests, want only the one in flight", n)
		}
		if err := <-shut; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if _, closed := fc.closedOrGoAway(10 * time.Second); !closed {
			t.Error("the connection is still open after Shutdown")
		}
	})
}

// TestH2ReloadKeepsConnections: a config reload (the node gives the proxy
// a new table through Update and keeps its listeners) changes where the
// next stream of an open HTTP/2 connection goes, without GOAWAY or a new
// connection.
func TestH2ReloadKeepsConnections(t *testing.T) {
	a, b := &named{name: "a"}, &named{name: "b"}
	urlA, urlB := upstream(t, a.ServeHTTP).URL, upstream(t, b.ServeHTTP).URL
	s := serveH2(t, h2Config(urlA))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		cfgFor := func(url string) *config.Config { return h2Config(url) }
		if err := s.p.Update(Input{Config: cfgFor(urlA), Policy: policyFor(t, cfgFor(urlA), nil)}); err != nil {
			t.Fatal(err)
		}
		fc := s.dialFrames(t, mode)
		fc.handshake()
		fc.get(1, testHost, "/")
		if st, body, _ := fc.response(1); st != 200 || string(body) != "a" {
			t.Fatalf("before the reload: got %d %q, want 200 a", st, body)
		}
		if err := s.p.Update(Input{Config: cfgFor(urlB), Policy: policyFor(t, cfgFor(urlB), nil)}); err != nil {
			t.Fatal(err)
		}
		fc.get(3, testHost, "/")
		if st, body, _ := fc.response(3); st != 200 || string(body) != "b" {
			t.Errorf("after the reload, on the same connection: got %d %q, want 200 b", st, body)
		}
	})
}

// TestH2SettingsAdvertised: the server's SETTINGS bound what a client may
// do: concurrent streams, header list size, and frame size.
func TestH2SettingsAdvertised(t *testing.T) {
	s := serveH2(t, h2Config(deadURL(t)))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		fc := s.dialFrames(t, mode)
		fc.handshake()
		var got []string
		for id, v := range fc.peer {
			got = append(got, fmt.Sprintf("%v=%d", id, v))
		}
		if n := fc.peer[http2.SettingMaxConcurrentStreams]; n == 0 || n > 1000 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 1..1000 (%s)", n, strings.Join(got, " "))
		}
		if n, ok := fc.peer[http2.SettingMaxHeaderListSize]; !ok || n < MaxHeaderBytes || n > 1<<20 {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d (set %v), want about %d (%s)", n, ok, MaxHeaderBytes, strings.Join(got, " "))
		}
		if n, ok := fc.peer[http2.SettingMaxFrameSize]; ok && n > 1<<20 {
			t.Errorf("SETTINGS_MAX_FRAME_SIZE %d, want a bound (%s)", n, strings.Join(got, " "))
		}
	})
}
