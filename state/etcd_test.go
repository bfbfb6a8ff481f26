package state

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func newEtcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func openEtcd(t *testing.T, cli *clientv3.Client, cache string) *Etcd {
	t.Helper()
	st, err := OpenEtcd(cli, EtcdOptions{Prefix: "/t/", Timeout: 2 * time.Second, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func setDial(d int) func(*Snapshot) error {
	return func(s *Snapshot) error { s.SetDial("api", "eu", d); return nil }
}

func TestEtcdUpdatePropagates(t *testing.T) {
	srv := etcdtest.Start(t)
	a := openEtcd(t, newEtcdClient(t, srv.Endpoint), filepath.Join(t.TempDir(), "a.json"))
	b := openEtcd(t, newEtcdClient(t, srv.Endpoint), "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wa, wb := a.Watch(ctx), b.Watch(ctx)

	got, err := a.Update(setDial(40), AuditEntry{Token: "ops", Action: "dial", Target: "api/eu", Old: "100", New: "40"})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Dial("api", "eu"); d != 40 || got.Generation != 1 || len(got.Audit) != 1 || got.Audit[0].Seq != 1 {
		t.Fatalf("update returned %+v", got)
	}
	select {
	case s := <-wb:
		if d, _ := s.Dial("api", "eu"); d != 40 {
			t.Fatalf("b saw dial %d, want 40", d)
		}
		if len(s.Audit) != 1 || s.Audit[0].Token != "ops" {
			t.Fatalf("b saw audit %+v", s.Audit)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b saw no change within 5s")
	}
	select {
	case s := <-wa:
		t.Fatalf("a was told of its own change: %+v", s)
	case <-time.After(300 * time.Millisecond):
	}
	// A change from b, made on b's view, continues the audit sequence.
	got, err = b.Update(setDial(10), AuditEntry{Token: "ops", Action: "dial"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 || got.Audit[len(got.Audit)-1].Seq != 2 {
		t.Fatalf("b's update: generation %d, audit %+v", got.Generation, got.Audit)
	}
	select {
	case s := <-wa:
		if d, _ := s.Dial("api", "eu"); d != 10 || len(s.Audit) != 2 {
			t.Fatalf("a saw %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a saw no change within 5s")
	}
}

// TestEtcdUpdateRerunsOnNewerState holds the fleet-wide compare: a store
// whose view is stale runs fn again on the state another node stored, so
// a check in fn sees it.
func TestEtcdUpdateRerunsOnNewerState(t *testing.T) {
	srv := etcdtest.Start(t)
	a := openEtcd(t, newEtcdClient(t, srv.Endpoint), "")
	b := openEtcd(t, newEtcdClient(t, srv.Endpoint), "")
	// Stop b's watch from catching up: change the state from a directly
	// and race b's update against it.
	if _, err := a.Update(setDial(50)); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	stale := b.rev
	b.mu.Unlock()
	if stale != 0 {
		// b already caught up through its watch; make it stale again.
		b.mu.Lock()
		b.cur, b.rev = Empty(), 0
		b.mu.Unlock()
	}
	var seen []int
	errStale := errors.New("changed meanwhile")
	_, err := b.Update(func(s *Snapshot) error {
		d, ok := s.Dial("api", "eu")
		if !ok {
			d = 100
		}
		seen = append(seen, d)
		if d != 100 {
			return errStale
		}
		s.SetDial("api", "eu", 0)
		return nil
	})
	if !errors.Is(err, errStale) {
		t.Fatalf("got %v, want the check to fail on the newer state (runs saw %v)", err, seen)
	}
	if len(seen) != 2 || seen[0] != 100 || seen[1] != 50 {
		t.Fatalf("fn saw dials %v, want [100 50]", seen)
	}
	s, _ := b.Load()
	if d, _ := s.Dial("api", "eu"); d != 50 {
		t.Fatalf("b holds dial %d after the refused change, want 50", d)
	}
}

func TestEtcdAuditCapped(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := newEtcdClient(t, srv.Endpoint)
	st, err := OpenEtcd(cli, EtcdOptions{Prefix: "/t/", AuditCap: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	for i := range 5 {
		if _, err := st.Update(setDial(i), AuditEntry{Action: "dial"}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(context.Background(), "/t/"+EtcdKeyAudit, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 3 || string(resp.Kvs[0].Key) != "/t/state/audit/00000000000000000003" {
		t.Fatalf("audit keys after 5 entries with cap 3: %d, first %s", len(resp.Kvs), resp.Kvs[0].Key)
	}
	// A new store reads the same three.
	other, err := OpenEtcd(cli, EtcdOptions{Prefix: "/t/", AuditCap: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	s, _ := other.Load()
	if len(s.Audit) != 3 || s.Audit[0].Seq != 3 || s.Audit[2].Seq != 5 || s.Generation != 5 {
		t.Fatalf("reopened: generation %d, audit %+v", s.Generation, s.Audit)
	}
}

// TestEtcdOutage: while etcd is down, Load keeps the last state, Update
// fails with ErrUnavailable and Status says so; when it is back, changes
// made meanwhile by nobody else are kept and changes work again.
func TestEtcdOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	cache := filepath.Join(t.TempDir(), "cache.json")
	st := openEtcd(t, newEtcdClient(t, srv.Endpoint), cache)
	if _, err := st.Update(setDial(30)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	waitFor(t, 10*time.Second, "store to notice etcd is down", func() bool {
		up, _, _ := st.Status()
		return !up
	})
	if s, err := st.Load(); err != nil || s.Dials["api"]["eu"] != 30 {
		t.Fatalf("load while down: %v %+v", err, s.Dials)
	}
	if _, err := st.Update(setDial(60)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("update while down: got %v, want ErrUnavailable", err)
	}
	// A store opened now starts from the saved state.
	cold, err := OpenEtcd(newEtcdClient(t, srv.Endpoint), EtcdOptions{Prefix: "/t/", Timeout: 500 * time.Millisecond, Cache: cache})
	if err != nil {
		t.Fatalf("cold start with a saved state: %v", err)
	}
	defer func() { _ = cold.Close() }()
	if s, _ := cold.Load(); s.Dials["api"]["eu"] != 30 {
		t.Fatalf("cold start: dials %+v", s.Dials)
	}
	// Without one it refuses.
	_, err = OpenEtcd(newEtcdClient(t, srv.Endpoint), EtcdOptions{Prefix: "/t/", Timeout: 500 * time.Millisecond, Cache: filepath.Join(t.TempDir(), "none.json")})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cold start without a saved state: got %v, want ErrUnavailable", err)
	}

	srv.Restart()
	waitFor(t, 20*time.Second, "stores to reconnect", func() bool {
		a, _, _ := st.Status()
		b, _, _ := cold.Status()
		return a && b
	})
	// Right after its restart etcd may still be settling (a loaded
	// machine): the first change may be refused, never lost.
	var err2 error
	waitFor(t, 20*time.Second, "a change from the cold-started store after reconnect", func() bool {
		_, err2 = cold.Update(setDial(70))
		if err2 != nil && !errors.Is(err2, ErrUnavailable) {
			t.Fatalf("update after reconnect: %v", err2)
		}
		return err2 == nil
	})
	waitFor(t, 5*time.Second, "the first store to see the change", func() bool {
		s, _ := st.Load()
		return s.Dials["api"]["eu"] == 70 && s.Generation == 2
	})
}

func TestEtcdResyncAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := newEtcdClient(t, srv.Endpoint)
	a := openEtcd(t, cli, "")
	b := openEtcd(t, newEtcdClient(t, srv.Endpoint), "")
	// Make b miss changes: stop its watch by hand through a resync that
	// cannot read (its revision bookkeeping goes back), then compact.
	for i := range 5 {
		if _, err := a.Update(setDial(i)); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	b.readRev = 1 // as if its watch had stopped long ago
	b.mu.Unlock()
	resp, err := cli.Get(context.Background(), "/t/state")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	b.askResync() // the watch restarts from readRev+1, which is compacted
	if _, err := a.Update(setDial(77)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b to re-read after compaction", func() bool {
		s, _ := b.Load()
		return s.Dials["api"]["eu"] == 77
	})
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
