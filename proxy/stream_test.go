package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// wsUpstream accepts WebSocket handshakes and then echoes raw bytes.
func wsUpstream(t *testing.T) string {
	t.Helper()
	return upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		if err := brw.Flush(); err != nil {
			return
		}
		_, _ = io.Copy(conn, brw) // echo until the proxy closes
	}).URL
}

func TestWebSocketEcho(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		// The timeout must hold the handshake (dial and response head) on
		// a loaded machine under the race detector; the test then waits
		// past it.
		const timeout = 2 * time.Second
		svc := proxyService("api", []string{testHost}, "eu")
		svc.Proxy.Timeout = config.Duration(timeout)
		cfg := &config.Config{Regions: []config.Region{testRegion("eu", wsUpstream(t))}, Services: []config.Service{svc}}
		h := newHarness(t, cfg, path)

		start := time.Now()
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(timeout + 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		_, err = io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: "+testHost+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading handshake: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("got status %d, want 101", resp.StatusCode)
		}
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
			t.Errorf("got Sec-WebSocket-Accept %q", got)
		}
		if got := resp.Header.Get("X-Meridian-Region"); got != "eu" {
			t.Errorf("got X-Meridian-Region %q, want eu", got)
		}
		echo := func(msg string) {
			t.Helper()
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatalf("writing %q: %v", msg, err)
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(br, buf); err != nil {
				t.Fatalf("reading echo of %q: %v", msg, err)
			}
			if string(buf) != msg {
				t.Fatalf("got echo %q, want %q", buf, msg)
			}
		}
		echo("hello")
		// The service timeout bounds the handshake, not the connection: let
		// it pass and talk again.
		time.Sleep(time.Until(start.Add(timeout + 300*time.Millisecond)))
		echo("still there")
	})
}

func TestEventStreamFlushedAsItComes(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		release := make(chan struct{})
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "data: two\n\n")
		})
		svc := proxyService("api", []string{testHost}, "eu")
		svc.Proxy.Timeout = config.Duration(300 * time.Millisecond)
		cfg := &config.Config{Regions: []config.Region{testRegion("eu", up.URL)}, Services: []config.Service{svc}}
		h := newHarness(t, cfg, path)

		resp, err := h.c.Do(h.request(http.MethodGet, testHost, "/events", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		first := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			first <- line
		}()
		select {
		case line := <-first:
			if line != "data: one\n" {
				t.Fatalf("got first line %q, want data: one", line)
			}
		case <-time.After(5 * time.Second):
			close(release)
			t.Fatal("first event did not arrive while the upstream was still streaming")
		}
		// Streams outlive the service timeout (it bounded the head only).
		time.Sleep(500 * time.Millisecond)
		close(release)
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("reading the rest: %v", err)
		}
		if string(rest) != "\ndata: two\n\n" {
			t.Errorf("got rest %q, want the second event", rest)
		}
	})
}

func TestHTTP2ClientAndTrailers(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Grpc-Status")
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("X-Upstream-Proto", r.Proto)
			w.Header().Set("X-Te", r.Header.Get("Te"))
			_, _ = io.WriteString(w, "payload")
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set(http.TrailerPrefix+"Grpc-Message", "fine") // not announced
		}))
		up.EnableHTTP2 = true
		up.StartTLS()
		t.Cleanup(up.Close)
		roots := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

		cfg := &config.Config{
			Regions:  []config.Region{testRegion("eu", up.URL)},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu")},
		}
		h := newHarness(t, cfg, func(o *Options) { o.UpstreamTLS = &tls.Config{RootCAs: roots} }, path)

		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos}
		defer tr.CloseIdleConnections()
		req := h.request(http.MethodPost, testHost, "/svc.Echo/Call", strings.NewReader("request"))
		req.Header.Set("Te", "trailers")
		req.Header.Set("Content-Type", "application/grpc")
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("client spoke %s to the proxy, want HTTP/2 (h2c)", resp.Proto)
		}
		if got := resp.Header.Get("X-Upstream-Proto"); got != "HTTP/2.0" {
			t.Errorf("upstream saw %q, want HTTP/2.0 to an https endpoint", got)
		}
		if got := resp.Header.Get("X-Te"); got != "trailers" {
			t.Errorf("upstream saw Te %q, want trailers", got)
		}
		if string(body) != "payload" {
			t.Errorf("got body %q, want payload", body)
		}
		if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
			t.Errorf("got trailer Grpc-Status %q, want 0 (trailers %v)", got, resp.Trailer)
		}
		if got := resp.Trailer.Get("Grpc-Message"); got != "fine" {
			t.Errorf("got unannounced trailer Grpc-Message %q, want fine (trailers %v)", got, resp.Trailer)
		}
	})
}
