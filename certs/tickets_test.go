package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-edge/meridian/internal/etcdtest"
)

const ticketKeyPath = "/fleet/tls/session-ticket-keys"

// ticketServer is a TLS server that writes "ok" on every connection.
type ticketServer struct {
	addr string
	cfg  *tls.Config
}

// startTicketServer serves cert on 127.0.0.1 with TLS versions up to max,
// until the test ends. keys, when not nil, shares its ticket keys.
func startTicketServer(t *testing.T, cert tls.Certificate, maxVersion uint16, keys *TicketKeys) ticketServer {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, MaxVersion: maxVersion}
	if keys != nil {
		keys.Attach(cfg)
	}
	return ticketServer{addr: serveTLSOK(t, cfg), cfg: cfg}
}

// serveTLSOK serves TLS with cfg on 127.0.0.1, writing "ok" on every
// connection, until the test ends, and returns the address.
func serveTLSOK(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.WriteString(c, "ok")
				_, _ = io.Copy(io.Discard, c) // until the client closes
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// ticketClient dials TLS servers with one session cache, as a browser
// does.
type ticketClient struct{ cfg *tls.Config }

func newTicketClient(roots *x509.CertPool) *ticketClient {
	return &ticketClient{cfg: &tls.Config{
		ServerName:         "api.example.com",
		RootCAs:            roots,
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
		MinVersion:         tls.VersionTLS12,
	}}
}

// connect completes a handshake with addr and reads the server's "ok",
// which also takes in a TLS 1.3 ticket, and reports whether the session
// was resumed.
func (c *ticketClient) connect(t *testing.T, addr string) bool {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c.cfg)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("reading from %s: %q, %v", addr, buf, err)
	}
	return conn.ConnectionState().DidResume
}

func newTestTicketKeys(t *testing.T, cli *clientv3.Client, opts TicketKeysOptions) *TicketKeys {
	t.Helper()
	opts.Logger = testLogger(t)
	k, err := NewTicketKeys(cli, ticketKeyPath, opts)
	if err != nil {
		t.Fatalf("NewTicketKeys: %v", err)
	}
	if err := k.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(k.Stop)
	if len(k.Keys()) == 0 {
		t.Fatal("no keys after Start")
	}
	return k
}

// testCert returns a certificate for api.example.com and a pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certFile, keyFile, leaf := writeSelfSigned(t, t.TempDir(), "api", "api.example.com")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return cert, pool
}

func TestTicketKeysResumeAcrossNodes(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cert, roots := testCert(t)
	for _, v := range []struct {
		name string
		max  uint16
	}{{"tls1.3", tls.VersionTLS13}, {"tls1.2", tls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			ka := newTestTicketKeys(t, srv.Client(t), TicketKeysOptions{})
			kb := newTestTicketKeys(t, srv.Client(t), TicketKeysOptions{})
			a := startTicketServer(t, cert, v.max, ka)
			b := startTicketServer(t, cert, v.max, kb)

			c := newTicketClient(roots)
			if c.connect(t, a.addr) {
				t.Fatal("first connection resumed")
			}
			if !c.connect(t, b.addr) {
				t.Error("the session from node a did not resume on node b")
			}
			if !c.connect(t, a.addr) {
				t.Error("the session did not resume back on node a")
			}

			// A node restarted (new keys holder, new listener) resumes it too.
			ka.Stop()
			kr := newTestTicketKeys(t, srv.Client(t), TicketKeysOptions{})
			r := startTicketServer(t, cert, v.max, kr)
			if !c.connect(t, r.addr) {
				t.Error("the session did not resume on a restarted node")
			}

			// Without shared keys, nodes do not resume each other's sessions:
			// the check above can fail.
			lone := startTicketServer(t, cert, v.max, nil)
			if c.connect(t, lone.addr) {
				t.Error("a node without the shared keys resumed the session")
			}
		})
	}
}

func TestTicketKeysRotation(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cert, roots := testCert(t)
	const rotation = 3 * time.Second
	opts := TicketKeysOptions{Rotation: rotation, Keep: 2}
	ka := newTestTicketKeys(t, srv.Client(t), opts)
	kb := newTestTicketKeys(t, srv.Client(t), opts)
	a := startTicketServer(t, cert, tls.VersionTLS13, ka)
	b := startTicketServer(t, cert, tls.VersionTLS13, kb)

	first := ka.Keys()[0]
	c, stale := newTicketClient(roots), newTicketClient(roots)
	if c.connect(t, a.addr) || stale.connect(t, a.addr) {
		t.Fatal("first connection resumed")
	}
	// Wait for one rotation, seen by both nodes.
	waitKeys := func(what string, ok func(a, b [][32]byte) bool) {
		t.Helper()
		deadline := time.Now().Add(3*rotation + 10*time.Second)
		for !ok(ka.Keys(), kb.Keys()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: node a has %d keys, node b %d", what, len(ka.Keys()), len(kb.Keys()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var second [32]byte
	waitKeys("one rotation", func(a, b [][32]byte) bool {
		if len(a) != 2 || a[0] == first || a[1] != first || len(b) != 2 || b[0] != a[0] {
			return false
		}
		second = a[0]
		return true
	})
	// The ticket made with the previous key still resumes, on either node.
	if !c.connect(t, b.addr) {
		t.Error("a ticket of the previous key did not resume after one rotation")
	}
	// Two rotations on, the first key is gone; a ticket made with it is
	// refused and the client makes a full handshake.
	waitKeys("two rotations", func(a, b [][32]byte) bool {
		return len(a) == 2 && a[1] == second && len(b) == 2 && b[0] == a[0]
	})
	if stale.connect(t, b.addr) {
		t.Error("a ticket of a key dropped two rotations ago resumed")
	}

	// One rotation per interval across the fleet: the stored keys were
	// created at least an interval apart.
	resp, err := srv.Client(t).Get(testCtx(t), ticketKeyPath)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("reading the stored keys: %v", err)
	}
	var stored storedTicketKeys
	if err := json.Unmarshal(resp.Kvs[0].Value, &stored); err != nil {
		t.Fatal(err)
	}
	if gap := stored.Keys[0].Created.Sub(stored.Keys[1].Created); gap < rotation-100*time.Millisecond {
		t.Errorf("keys created %s apart, want at least the rotation interval %s: two nodes rotated", gap, rotation)
	}
}

func TestTicketKeysReplacesBadValue(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	if _, err := cli.Put(testCtx(t), ticketKeyPath, `{"keys":[{"created":"2026-01-01T00:00:00Z","key":"c2hvcnQ="}]}`); err != nil {
		t.Fatal(err)
	}
	k := newTestTicketKeys(t, cli, TicketKeysOptions{})
	resp, err := cli.Get(testCtx(t), ticketKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	var stored storedTicketKeys
	if err := stored.decode(resp.Kvs[0].Value); err != nil {
		t.Fatalf("stored value after Start: %v", err)
	}
	if len(stored.Keys) != 1 || [32]byte(stored.Keys[0].Key) != k.Keys()[0] {
		t.Errorf("stored %d keys; want the one key in use", len(stored.Keys))
	}
}

func TestTicketKeysOptions(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	tests := []struct {
		name string
		cli  *clientv3.Client
		key  string
		opts TicketKeysOptions
		want string
	}{
		{"no client", nil, ticketKeyPath, TicketKeysOptions{}, "shared session ticket keys: no etcd client"},
		{"no key", cli, "", TicketKeysOptions{}, `shared session ticket keys: key "": want an etcd key`},
		{"short rotation", cli, ticketKeyPath, TicketKeysOptions{Rotation: time.Millisecond}, "shared session ticket keys: rotation 1ms: want at least 1s"},
		{"one key", cli, ticketKeyPath, TicketKeysOptions{Keep: 1}, "shared session ticket keys: keep 1: want at least 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTicketKeys(tc.cli, tc.key, tc.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTicketKeysDecode(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{``, "empty value"},
		{`nope`, "decoding session ticket keys: invalid character"},
		{`{"keys":[]}`, "no keys"},
		{`{"keys":[{"created":"2026-01-01T00:00:00Z","key":"c2hvcnQ="}]}`, "key 0: 5 bytes, want 32"},
		{`{"keys":[{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`, "key 0: no creation time"},
	}
	for _, tc := range tests {
		var s storedTicketKeys
		err := s.decode([]byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("decode(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	var s storedTicketKeys
	if err := s.decode([]byte(`{"keys":[{"created":"2026-01-01T00:00:00Z","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`)); err != nil {
		t.Errorf("decode of a good value: %v", err)
	}
}

// FuzzTicketKeysDecode feeds arbitrary etcd values to the stored keys'
// parser: it never panics, and what it accepts holds only usable keys and
// survives a round trip.
func FuzzTicketKeysDecode(f *testing.F) {
	f.Add([]byte(`{"keys":[{"created":"2026-01-01T00:00:00Z","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`))
	f.Add([]byte(`{"keys":[{"created":"2026-01-01T00:00:00Z","key":"c2hvcnQ="}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s storedTicketKeys
		if err := s.decode(b); err != nil {
			return
		}
		for i, k := range s.Keys {
			if len(k.Key) != 32 || k.Created.IsZero() {
				t.Fatalf("accepted key %d: %d bytes, created %s", i, len(k.Key), k.Created)
			}
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back storedTicketKeys
		if err := back.decode(again); err != nil || len(back.Keys) != len(s.Keys) {
			t.Fatalf("round trip: %v, %d keys, want %d", err, len(back.Keys), len(s.Keys))
		}
	})
}
