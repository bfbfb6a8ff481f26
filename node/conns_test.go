package node

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConnectionLimitsAndShutdown: listen.connections reaches the proxy's
// listeners, and Shutdown stops them through the proxy, closing the idle
// connections it holds.
func TestConnectionLimitsAndShutdown(t *testing.T) {
	dir := t.TempDir()
	up := newUpstream(t, "us-east")
	text := strings.Replace(baseConfig, `  admin: "127.0.0.1:0"`,
		`  admin: "127.0.0.1:0"`+"\n  connections: {max: 100, max_per_source: 2}", 1)
	text = strings.ReplaceAll(text, "{{STATE}}", filepath.Join(dir, "state.json"))
	for _, r := range []string{"us-east", "eu-west", "ap-south"} {
		text = strings.ReplaceAll(text, "{{"+r+"}}", up.srv.URL)
	}
	tn := &testNode{path: filepath.Join(dir, "meridian.yaml")}
	tn.write(t, text)
	n := startFromFile(t, tn.path)
	t.Cleanup(func() { _ = n.Close() })
	waitFor(t, 3*time.Second, "node ready", n.Ready)
	addr := n.Addr("http/0").String()

	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if code := proxiedGet(t, c); code != 200 {
			t.Fatalf("got %d, want 200", code)
		}
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if !closedWithin(third, 5*time.Second) {
		t.Fatal("a third connection from one source was not closed (max_per_source: 2)")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range held {
		if !closedWithin(c, time.Second) {
			t.Errorf("idle connection %d still open after Shutdown", i)
		}
	}
}

// proxiedGet sends a GET for the proxied service on c and returns the status.
func proxiedGet(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // a failure fails the read
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// closedWithin reports whether the peer closed c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d)) // a failure shows as a read error
	var b [1]byte
	_, err := c.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}
