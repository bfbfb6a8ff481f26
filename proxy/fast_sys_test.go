package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// TestFastSlowReader: a response larger than the socket buffers, to a
// client that stops reading for a while, waits for room and arrives whole;
// to a client that never reads, it is cut at the request's timeout.
func TestFastSlowReader(t *testing.T) {
	const size = 16 << 20 // more than loopback's socket buffers hold when not read
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = w.Write(body)
	})
	// Moving 2×16 MiB through the proxy under the race detector takes
	// seconds of CPU, which a loaded machine hands out slowly: the point
	// here is that the response arrives whole, not how fast.
	const slowBudget = 90 * time.Second
	cfg := cannedConfig(up.URL)
	cfg.Services[0].Proxy.Timeout = config.Duration(slowBudget)
	short := proxyService("short", []string{"short.example.com"}, "eu")
	short.Proxy.Timeout = config.Duration(time.Second)
	cfg.Services = append(cfg.Services, short)
	h := newHarness(t, cfg, fastPath)

	t.Run("pauses, then reads", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		if err := c.conn.SetDeadline(time.Now().Add(slowBudget)); err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // the second request is served by the raw loop
			c.send("GET /big HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
			time.Sleep(300 * time.Millisecond)
			resp, got := c.read(http.MethodGet)
			if resp.StatusCode != 200 || got != string(body) {
				t.Fatalf("request %d: got %d with %d bytes, want 200 with the %d bytes sent", i, resp.StatusCode, len(got), size)
			}
		}
	})
	t.Run("never reads", func(t *testing.T) {
		c := dialRaw(t, h.addr)
		c.send("GET /big HTTP/1.1\r\nHost: short.example.com\r\n\r\n")
		time.Sleep(2 * time.Second) // past the request's timeout
		n, err := io.Copy(io.Discard, c.br)
		if err == nil && n >= size {
			t.Errorf("read %d bytes to the end, want the response cut short", n)
		}
	})
	if n := h.slowConns.Load(); n != 0 {
		t.Errorf("net/http served %d connections, want none", n)
	}
}
