package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket as systemd does for NOTIFY_SOCKET.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading the notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySequence(t *testing.T) {
	// A short directory: socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, name := range []string{filepath.Join(dir, "notify"), fmt.Sprintf("@meridian-sdnotify-test-%d", os.Getpid())} {
		t.Run(name[:1], func(t *testing.T) {
			c := listen(t, name)
			n, err := New(name)
			if err != nil {
				t.Fatal(err)
			}
			if !n.Enabled() {
				t.Fatal("Enabled() = false for a socket path")
			}
			if err := n.Ready(); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, c); got != "READY=1" {
				t.Errorf("ready: got %q, want READY=1", got)
			}
			before, _ := monotonicUsec()
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			got := recv(t, c)
			after, _ := monotonicUsec()
			lines := strings.Split(got, "\n")
			if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
				t.Fatalf("reloading: got %q, want RELOADING=1 and MONOTONIC_USEC=…", got)
			}
			us, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
			if err != nil || us < before || us > after {
				t.Errorf("MONOTONIC_USEC=%d (%v), want between %d and %d", us, err, before, after)
			}
			if err := n.Status("serving 3 regions\nall up"); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, c); got != "STATUS=serving 3 regions all up" {
				t.Errorf("status: got %q", got)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, c); got != "STOPPING=1" {
				t.Errorf("stopping: got %q, want STOPPING=1", got)
			}
		})
	}
}

func TestNotifyDisabled(t *testing.T) {
	for _, n := range []*Notifier{nil, mustNew(t, "")} {
		if n.Enabled() {
			t.Error("Enabled() = true without a socket")
		}
		if err := n.Ready(); err != nil {
			t.Errorf("Ready without a socket: %v", err)
		}
		if err := n.Stopping(); err != nil {
			t.Errorf("Stopping without a socket: %v", err)
		}
	}
}

func mustNew(t *testing.T, path string) *Notifier {
	t.Helper()
	n, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotifyErrors(t *testing.T) {
	if _, err := New("relative/notify"); err == nil || !strings.Contains(err.Error(), "neither an absolute path nor an abstract socket") {
		t.Errorf("relative path: got %v", err)
	}
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := mustNew(t, filepath.Join(dir, "missing"))
	if err := n.Ready(); err == nil || !strings.HasPrefix(err.Error(), "notifying systemd: ") {
		t.Errorf("missing socket: got %v, want a notifying systemd error", err)
	}
}
