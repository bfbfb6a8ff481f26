package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunNotifiesSystemd runs meridian as systemd's Type=notify would:
// READY=1 once it serves, RELOADING=1 (with MONOTONIC_USEC) then READY=1
// around a SIGHUP reload, STOPPING=1 on SIGTERM. Its stderr is a pipe, so
// it logs JSON, with durations as strings.
func TestRunNotifiesSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	sockDir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sockPath := filepath.Join(sockDir, "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	recv := func(what string) string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = sock.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return string(buf[:n])
	}

	dir := t.TempDir()
	adminPort := freePort(t)
	path := filepath.Join(dir, "meridian.yaml")
	cfg := fmt.Sprintf(`
node: {name: sd-test, drain: 1s, shutdown_timeout: 2s}
listen: {dns: ["127.0.0.1:0"], admin: "127.0.0.1:%d"}
state: {path: %s}
regions:
  - name: a
    endpoints: [{address: 192.0.2.1}]
    health: {type: none}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
services:
  - {name: api, hostnames: [api.example.test], policy: failover, regions: [a]}
`, adminPort, filepath.Join(dir, "state.json"))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", sockPath)
	child := startChild(t, "run", "--config", path)

	if got := recv("READY=1"); got != "READY=1" {
		t.Fatalf("first notification: got %q, want READY=1", got)
	}
	// READY=1 is sent only once the node answers.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health/live", adminPort))
	if err != nil {
		t.Fatalf("admin listener after READY=1: %v", err)
	}
	resp.Body.Close()

	if err := child.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := recv("RELOADING=1"); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("on SIGHUP: got %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if got := recv("READY=1 after the reload"); got != "READY=1" {
		t.Errorf("after the reload: got %q, want READY=1", got)
	}
	if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := recv("STOPPING=1"); got != "STOPPING=1" {
		t.Errorf("on SIGTERM: got %q, want STOPPING=1", got)
	}
	select {
	case err := <-child.exited:
		child.exited <- err
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}

	// Every stderr line is a JSON object with time, level and msg; the
	// drain is logged as "1s", not as nanoseconds.
	sawDrain := false
	for line := range strings.Lines(child.stderr.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line without %q: %q", k, line)
			}
		}
		if rec["msg"] == "draining" {
			sawDrain = true
			if rec["drain"] != "1s" || rec["shutdown_timeout"] != "2s" {
				t.Errorf("durations in JSON logs: got drain=%v shutdown_timeout=%v, want \"1s\" and \"2s\"", rec["drain"], rec["shutdown_timeout"])
			}
		}
	}
	if !sawDrain {
		t.Errorf("no draining line in the log:\n%s", child.stderr.String())
	}
}
