package certs

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-edge/meridian/internal/etcdtest"
)

// testLockTTL keeps the expiry tests short; etcd's minimum lease TTL is
// a little over a second.
const testLockTTL = 3 * time.Second

func newTestStorage(t *testing.T, cli *clientv3.Client, prefix string) *EtcdStorage {
	t.Helper()
	s, err := NewEtcdStorage(cli, prefix, EtcdStorageOptions{LockTTL: testLockTTL, Owner: t.Name(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewEtcdStorage: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEtcdStorageFiles(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newTestStorage(t, srv.Client(t), "/test/certs")
	ctx := testCtx(t)

	before := time.Now().Add(-time.Second)
	files := map[string]string{
		"certificates/ca/a.example.com/a.example.com.crt":  "crt-a",
		"certificates/ca/a.example.com/a.example.com.key":  "key-a",
		"certificates/ca/a.example.com/a.example.com.json": "{}",
		"certificates/ca/b.example.com/b.example.com.crt":  "crt-b",
		"acme/ca/users/ops@example.com/ops.json":           "user",
		"ab":                                               "sibling, not under a",
		"last":                                             "",
	}
	for _, k := range slices.Sorted(maps.Keys(files)) {
		if err := s.Store(ctx, k, []byte(files[k])); err != nil {
			t.Fatalf("Store(%q): %v", k, err)
		}
	}
	// Overwrite.
	if err := s.Store(ctx, "ab", []byte("new")); err != nil {
		t.Fatal(err)
	}
	files["ab"] = "new"
	for k, want := range files {
		got, err := s.Load(ctx, k)
		if err != nil || string(got) != want {
			t.Errorf("Load(%q) = %q, %v; want %q", k, got, err, want)
		}
	}

	t.Run("missing keys", func(t *testing.T) {
		for _, k := range []string{"nope", "certificates/ca/a.example.com", "a"} {
			if _, err := s.Load(ctx, k); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Load(%q) error %v, want fs.ErrNotExist", k, err)
			}
			if _, err := s.Stat(ctx, k+"x"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(%q) error %v, want fs.ErrNotExist", k+"x", err)
			}
			if _, err := s.List(ctx, k+"x", false); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("List(%q) error %v, want fs.ErrNotExist", k+"x", err)
			}
		}
	})

	t.Run("exists", func(t *testing.T) {
		for k, want := range map[string]bool{
			"certificates/ca/a.example.com/a.example.com.crt": true, // file
			"certificates/ca/a.example.com":                   true, // directory
			"certificates":                                    true,
			"certificates/ca/a.example":                       false, // a name prefix, not a component
			"a":                                               false,
			"last":                                            true, // empty file
		} {
			if got := s.Exists(ctx, k); got != want {
				t.Errorf("Exists(%q) = %v, want %v", k, got, want)
			}
		}
	})

	t.Run("stat", func(t *testing.T) {
		fi, err := s.Stat(ctx, "certificates/ca/a.example.com/a.example.com.key")
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsTerminal || fi.Size != 5 || fi.Key != "certificates/ca/a.example.com/a.example.com.key" ||
			fi.Modified.Before(before) || fi.Modified.After(time.Now().Add(time.Second)) {
			t.Errorf("Stat(file) = %+v, want terminal, size 5, modified just now", fi)
		}
		di, err := s.Stat(ctx, "certificates/ca")
		if err != nil {
			t.Fatal(err)
		}
		if di.IsTerminal || di.Key != "certificates/ca" || di.Modified.Before(fi.Modified) {
			t.Errorf("Stat(dir) = %+v, want a directory modified at its latest file (%s)", di, fi.Modified)
		}
	})

	t.Run("list", func(t *testing.T) {
		tests := []struct {
			dir       string
			recursive bool
			want      []string
		}{
			{"certificates/ca", false, []string{"certificates/ca/a.example.com", "certificates/ca/b.example.com"}},
			{"certificates/ca/a.example.com", false, []string{
				"certificates/ca/a.example.com/a.example.com.crt",
				"certificates/ca/a.example.com/a.example.com.json",
				"certificates/ca/a.example.com/a.example.com.key",
			}},
			{"certificates", true, []string{
				"certificates/ca",
				"certificates/ca/a.example.com",
				"certificates/ca/a.example.com/a.example.com.crt",
				"certificates/ca/a.example.com/a.example.com.json",
				"certificates/ca/a.example.com/a.example.com.key",
				"certificates/ca/b.example.com",
				"certificates/ca/b.example.com/b.example.com.crt",
			}},
			{"", false, []string{"ab", "acme", "certificates", "last"}},
			{"ab", false, nil}, // a file: nothing under it
		}
		for _, tc := range tests {
			got, err := s.List(ctx, tc.dir, tc.recursive)
			if err != nil {
				t.Errorf("List(%q, %v): %v", tc.dir, tc.recursive, err)
				continue
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("List(%q, %v) = %q, want %q", tc.dir, tc.recursive, got, tc.want)
			}
		}
	})

	t.Run("conflicts and bad keys", func(t *testing.T) {
		tests := []struct {
			call func() error
			want string
		}{
			{func() error { return s.Store(ctx, "ab/c", nil) }, `storing "ab/c": a directory of that name or a file at one of its parents exists`},
			{func() error { return s.Store(ctx, "certificates/ca", nil) }, `storing "certificates/ca": a directory of that name or a file at one of its parents exists`},
			{func() error { return s.Store(ctx, "", nil) }, "storing: empty key"},
			{func() error { return s.Store(ctx, "a//b", nil) }, `storing: key "a//b": want slash-separated names without empty, . or .. parts`},
			{func() error { _, err := s.Load(ctx, "../x"); return err }, `loading: key "../x": want slash-separated names`},
			{func() error { return s.Delete(ctx, "/") }, `deleting: key "/": want slash-separated names`},
			{func() error { return s.Lock(ctx, "") }, "locking: empty key"},
		}
		for _, tc := range tests {
			if err := tc.call(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		}
		if got, _ := s.Load(ctx, "ab"); string(got) != "new" {
			t.Errorf("after refused stores ab = %q, want it kept", got)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := s.Delete(ctx, "certificates/ca/a.example.com"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "certificates/ca/a.example.com"); err != nil {
			t.Errorf("deleting a missing key: %v, want nil", err)
		}
		if s.Exists(ctx, "certificates/ca/a.example.com/a.example.com.crt") || s.Exists(ctx, "certificates/ca/a.example.com") {
			t.Error("directory still exists after Delete")
		}
		if got, _ := s.List(ctx, "certificates", true); !slices.Equal(got, []string{"certificates/ca", "certificates/ca/b.example.com", "certificates/ca/b.example.com/b.example.com.crt"}) {
			t.Errorf("after delete List = %q", got)
		}
		if err := s.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if !s.Exists(ctx, "ab") {
			t.Error(`Delete("a") removed "ab"`)
		}
		// A deleted directory's name can become a file.
		if err := s.Store(ctx, "certificates/ca/a.example.com", []byte("file")); err != nil {
			t.Errorf("storing where a deleted directory was: %v", err)
		}
	})
}

func TestEtcdStorageSharedAndSeparate(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	a := newTestStorage(t, srv.Client(t), "/fleet/certs/")
	b := newTestStorage(t, srv.Client(t), "/fleet/certs/")
	other := newTestStorage(t, srv.Client(t), "/fleet/certs-other/")
	ctx := testCtx(t)
	if err := a.Store(ctx, "k", []byte("from a")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Load(ctx, "k"); err != nil || string(got) != "from a" {
		t.Errorf("b.Load = %q, %v; want what a stored", got, err)
	}
	if _, err := other.Load(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("another prefix sees the key: %v", err)
	}
}

func TestEtcdStorageOptions(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	tests := []struct {
		name   string
		cli    *clientv3.Client
		prefix string
		ttl    time.Duration
		want   string
	}{
		{"no client", nil, "/p/", 0, "etcd certificate storage: no etcd client"},
		{"empty prefix", cli, "", 0, `etcd certificate storage: prefix "": want a non-empty key prefix`},
		{"root prefix", cli, "/", 0, `etcd certificate storage: prefix "/": want a non-empty key prefix`},
		{"short ttl", cli, "/p/", 100 * time.Millisecond, "etcd certificate storage: lock ttl 100ms: want at least 1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEtcdStorage(tc.cli, tc.prefix, EtcdStorageOptions{LockTTL: tc.ttl})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEtcdStorageUnreachable(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newTestStorage(t, srv.Client(t), "/p/")
	ctx := testCtx(t)
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := s.Load(short, "k")
	if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), `loading "k": `) {
		t.Errorf("Load with etcd down: %v, want an error that is not fs.ErrNotExist", err)
	}
	srv.Restart()
	if got, err := s.Load(ctx, "k"); err != nil || string(got) != "v" {
		t.Errorf("Load after etcd is back = %q, %v", got, err)
	}
}

// lockReturns runs Lock in the background and reports on the channel when
// it returns.
func lockReturns(ctx context.Context, s *EtcdStorage, name string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Lock(ctx, name) }()
	return ch
}

// notWithin asserts that ch stays silent for d.
func notWithin(t *testing.T, ch <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned (%v) while the lock is held", what, err)
	case <-time.After(d):
	}
}

// within waits up to d for ch and returns what it got.
func within(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %s", what, d)
		return nil
	}
}

func TestEtcdStorageLockAcrossClients(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	a := newTestStorage(t, srv.Client(t), "/p/")
	b := newTestStorage(t, srv.Client(t), "/p/")
	ctx := testCtx(t)

	if err := a.Lock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_example.com"); ok || err != nil {
		t.Fatalf("TryLock while held = %v, %v; want false, nil", ok, err)
	}
	// Another name is free.
	if ok, err := b.TryLock(ctx, "other"); !ok || err != nil {
		t.Fatalf("TryLock(other) = %v, %v; want true", ok, err)
	}
	if err := b.Unlock(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	got := lockReturns(ctx, b, "issue_cert_example.com")
	notWithin(t, got, 500*time.Millisecond, "b.Lock")
	// The lease is kept alive past its TTL while a holds the lock.
	notWithin(t, got, testLockTTL+time.Second, "b.Lock")
	if err := a.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, got, 10*time.Second, "b.Lock"); err != nil {
		t.Fatalf("b.Lock after a's Unlock: %v", err)
	}
	if ok, _ := a.TryLock(ctx, "issue_cert_example.com"); ok {
		t.Fatal("a took the lock b holds")
	}
	if err := b.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "issue_cert_example.com"); err == nil || err.Error() != `unlocking "issue_cert_example.com": not locked by this storage` {
		t.Errorf("second Unlock: %v", err)
	}
}

func TestEtcdStorageLockInProcess(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newTestStorage(t, srv.Client(t), "/p/")
	ctx := testCtx(t)

	// Goroutines of one process exclude each other too.
	var inside, most atomic.Int32
	const workers = 4
	done := make(chan error, workers)
	for range workers {
		go func() {
			if err := s.Lock(ctx, "l"); err != nil {
				done <- err
				return
			}
			n := inside.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			inside.Add(-1)
			done <- s.Unlock(ctx, "l")
		}()
	}
	for range workers {
		if err := within(t, done, 20*time.Second, "a worker"); err != nil {
			t.Fatal(err)
		}
	}
	if most.Load() != 1 {
		t.Errorf("%d holders at once, want 1", most.Load())
	}

	// A waiting Lock ends with its context.
	if err := s.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	got := lockReturns(wctx, s, "l")
	notWithin(t, got, 200*time.Millisecond, "Lock")
	cancel()
	if err := within(t, got, 5*time.Second, "cancelled Lock"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Lock: %v, want context.Canceled", err)
	}
	if err := s.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
}

// Environment of the lock-holder process TestEtcdStorageLockHolderKilled
// starts: it takes the lock and waits to be killed.
const (
	lockHolderEnv      = "MERIDIAN_TEST_LOCK_HOLDER" // etcd endpoint
	lockHolderReadyMsg = "locked"
)

// runLockHolder is the body of the lock-holder process (see TestMain).
func runLockHolder(endpoint string) int {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return 2
	}
	s, err := NewEtcdStorage(cli, "/p/", EtcdStorageOptions{LockTTL: testLockTTL, Owner: "holder"})
	if err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Lock(ctx, "issue_cert_example.com"); err != nil {
		return 3
	}
	os.Stdout.WriteString(lockHolderReadyMsg + "\n")
	<-ctx.Done() // killed long before
	return 4
}

func TestEtcdStorageLockHolderKilled(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newTestStorage(t, srv.Client(t), "/p/")
	ctx := testCtx(t)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+srv.Endpoints()[0])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != lockHolderReadyMsg {
		t.Fatalf("lock holder said %q, %v", line, err)
	}
	if ok, err := s.TryLock(ctx, "issue_cert_example.com"); ok || err != nil {
		t.Fatalf("TryLock while the other process holds the lock = %v, %v", ok, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := within(t, lockReturns(ctx, s, "issue_cert_example.com"), testLockTTL+10*time.Second, "Lock after the holder was killed"); err != nil {
		t.Fatal(err)
	}
	t.Logf("lock freed %s after its holder was killed (ttl %s)", time.Since(killed).Round(10*time.Millisecond), testLockTTL)
	if err := s.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
}
