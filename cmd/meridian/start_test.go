package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunExitsOnTakenPort starts a node whose admin, dns or http port is
// taken in turn: it must close what it opened and exit 1 with the bind
// error, promptly.
func TestRunExitsOnTakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, kind := range []string{"admin", "dns", "http"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			// The taken port is held by a TCP listener; for dns, a UDP
			// socket on the same port too, since DNS binds both.
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			takenAddr := taken.Addr().String()
			if kind == "dns" {
				u, err := net.ListenPacket("udp", takenAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer u.Close()
			}
			// The others are chosen by the kernel: none can be taken.
			addr := map[string]string{"admin": "127.0.0.1:0", "dns": "127.0.0.1:0", "http": "127.0.0.1:0"}
			addr[kind] = takenAddr
			cfg := fmt.Sprintf(`
node: {name: taken-%s, addresses: [127.0.0.1]}
listen: {dns: [%q], http: [%q], admin: %q}
state: {path: %s}
regions:
  - name: a
    endpoints: [{address: 127.0.0.1, url: "http://127.0.0.1:1"}]
    health: {type: none}
zones:
  - name: example.test
    nameservers: [ns1.example.test]
services:
  - {name: api, hostnames: [api.example.test], mode: proxy, policy: failover, regions: [a]}
`, kind, addr["dns"], addr["http"], addr["admin"], filepath.Join(dir, "state.json"))
			path := filepath.Join(dir, "meridian.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			c := startChild(t, "run", "--config", path)
			var err2 error
			select {
			case err2 = <-c.exited:
				c.exited <- err2
			case <-time.After(10 * time.Second):
				t.Fatalf("node with a taken %s port did not exit", kind)
			}
			var ee *exec.ExitError
			if !errors.As(err2, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: got %v, want exit status 1", err2)
			}
			out := c.stderr.String()
			if !strings.Contains(out, takenAddr) || !strings.Contains(out, "address already in use") {
				t.Fatalf("the error names neither %s nor the bind failure:\n%s", takenAddr, out)
			}
		})
	}
}
