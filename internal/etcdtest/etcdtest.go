// Package etcdtest runs a real single-member etcd server for tests: the
// etcd binary (Debian's etcd-server, which .ci/run installs) on free
// loopback ports with a temporary data directory, stopped when the test
// ends.
//
// It is test support only: no production code imports it, and it never
// touches an etcd it did not start (no default port, no shared data).
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startTimeout bounds how long Start waits for etcd to serve.
const startTimeout = 30 * time.Second

// Server is a running etcd member.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:PORT (Endpoints()[0]).
	Endpoint string

	t       testing.TB
	bin     string
	dataDir string
	client  string // client URL, http://127.0.0.1:PORT
	peer    string // peer URL

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	out     *lockedBuffer
	clients []*clientv3.Client
}

// Binary returns the etcd binary's path, or an error saying why there is
// none.
func Binary() (string, error) {
	if p := os.Getenv("MERIDIAN_ETCD"); p != "" {
		return p, nil
	}
	return exec.LookPath("etcd")
}

// Start runs etcd until the test ends. Without an etcd binary the test is
// skipped, except under CI (CI=true), where .ci/run installs one and its
// absence fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("etcd binary not found (install etcd-server): %v", err)
		}
		t.Skipf("etcd binary not found (install etcd-server): %v", err)
	}
	s := &Server{t: t, bin: bin, dataDir: t.TempDir()}
	if err := os.Chmod(s.dataDir, 0o700); err != nil { //nolint:gosec // G302: a directory, owner only, as etcd wants it
		t.Fatal(err)
	}
	t.Cleanup(s.cleanup)
	var last error
	for range 3 { // a port picked free may be taken before etcd binds it
		s.client = "http://" + freeAddr(t)
		s.peer = "http://" + freeAddr(t)
		if last = s.start(); last == nil {
			s.Endpoint = s.client
			return s
		}
	}
	t.Fatalf("starting etcd: %v", last)
	return nil
}

// Endpoints returns the client endpoints, for clientv3.Config.
func (s *Server) Endpoints() []string { return []string{s.client} }

// Client returns a new client of this server, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

// Stop kills etcd (SIGKILL, as an outage) and waits for it to exit. Its
// data stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Restart starts etcd again on the same ports and data after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 10 { // the old socket may linger a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.t.Fatalf("restarting etcd: %v", err)
}

func (s *Server) start() error {
	out := &lockedBuffer{}
	cmd := exec.Command(s.bin, //nolint:gosec // G204: the etcd binary the test environment names
		"--name", "test",
		"--data-dir", s.dataDir,
		"--listen-client-urls", s.client,
		"--advertise-client-urls", s.client,
		"--listen-peer-urls", s.peer,
		"--initial-advertise-peer-urls", s.peer,
		"--initial-cluster", "test="+s.peer,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.out = cmd, exited, out
	s.mu.Unlock()
	if err := s.waitReady(exited); err != nil {
		s.Stop()
		return fmt.Errorf("%w\netcd output:\n%s", err, out.String())
	}
	return nil
}

// waitReady polls until etcd answers a read.
func (s *Server) waitReady(exited <-chan struct{}) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("etcd exited before serving")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not serving within %s: %w", startTimeout, err)
		}
	}
}

func (s *Server) cleanup() {
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	out := s.out
	s.mu.Unlock()
	for _, c := range clients {
		_ = c.Close()
	}
	s.Stop()
	if s.t.Failed() && out != nil {
		s.t.Logf("etcd output:\n%s", out.String())
	}
}

// Ports for etcd are drawn below the kernel's ephemeral range, where
// neither a listener on port 0 nor an outgoing connection is given one: a
// port left free while etcd is stopped stays free for Restart (clients
// redialling a stopped etcd could otherwise connect to themselves on it).
const (
	portLow          = 10000
	defaultEphemeral = 32768 // Linux's default start of the range
)

// freeAddr returns a loopback host:port below the ephemeral range that
// was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	hi := ephemeralStart()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(portLow+rand.IntN(hi-portLow))) //nolint:gosec // G404: a port to try, not a secret
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			_ = ln.Close()
			return addr
		}
	}
	t.Fatalf("no free loopback port between %d and %d", portLow, hi)
	return ""
}

// ephemeralStart reads the start of the kernel's ephemeral port range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeral
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return defaultEphemeral
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= portLow+1000 {
		return defaultEphemeral
	}
	return lo
}

// lockedBuffer collects etcd's output; safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil // enough to diagnose
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
