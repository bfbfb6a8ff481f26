// Package etcdtest starts a real etcd server for tests: the etcd binary on
// PATH (Debian's etcd-server), on free loopback ports with a temporary data
// directory, stopped and restarted at will.
//
// It is for tests only; nothing in the product imports it. It must never
// bind etcd's default ports.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one etcd member running as a child process.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:PORT.
	Endpoint string

	t      testing.TB
	bin    string
	dir    string
	client int
	peer   int
	logf   string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Binary returns the etcd binary on PATH. When it is missing, the test is
// skipped, except under CI (CI set in the environment), where it fails:
// CI installs etcd-server.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("etcd binary not found on PATH (install etcd-server): %v", err)
		}
		t.Skipf("etcd binary not found on PATH (install etcd-server): %v", err)
	}
	return bin
}

// Start runs a one-member etcd and waits until it answers. It is stopped
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	s.client, s.peer = freePort(t), freePort(t)
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.client)
	s.logf = filepath.Join(s.dir, "etcd.log")
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("etcd already running")
	}
	peer := "http://127.0.0.1:" + strconv.Itoa(s.peer)
	logFile, err := os.OpenFile(s.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, //nolint:gosec // the etcd binary found on PATH, with fixed arguments
		"--name", "test",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.Endpoint,
		"--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer,
		"--logger", "zap",
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting etcd: %w", err)
	}
	_ = logFile.Close()
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if s.healthy() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(s.logf)
	return fmt.Errorf("etcd did not become healthy within 30s; log:\n%s", log)
}

func (s *Server) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop kills etcd (SIGKILL: an outage, not a goodbye) and waits for it.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts a stopped server again on the same ports and data.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}
