package fleet

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/meridian-edge/meridian/internal/etcdtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func join(t *testing.T, cli *clientv3.Client, name string) (*Membership, error) {
	t.Helper()
	m, err := New(Options{Client: cli, Prefix: "/f/", Name: name, TTL: 2 * time.Second, Timeout: 2 * time.Second,
		Report: func() Member {
			return Member{Version: "test", Ready: true, Regions: []RegionStatus{{Name: "us", Up: name != "c"}}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		return nil, err
	}
	t.Cleanup(m.Stop)
	return m, nil
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func names(ms []Member) string {
	s := ""
	for _, m := range ms {
		s += m.Name + " "
	}
	return s
}

// TestMembership: nodes list each other, a live name is refused, a node
// that stops leaves at once, a lock has one holder and passes on when its
// holder goes.
func TestMembership(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := newClient(t, srv.Endpoint)
	a, err := join(t, cli, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := join(t, newClient(t, srv.Endpoint), "b")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to list a and b", func() bool {
		ms, fresh := a.Members()
		return fresh && names(ms) == "a b "
	})
	if _, err := join(t, newClient(t, srv.Endpoint), "b"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second b: got %v, want ErrNameTaken", err)
	}

	held, _, err := a.TryLock(context.Background(), "shift/x")
	if err != nil || !held {
		t.Fatalf("a locks: %v %v", held, err)
	}
	held, holder, err := b.TryLock(context.Background(), "shift/x")
	if err != nil || held || holder != "a" {
		t.Fatalf("b locks a's lock: held %v holder %q err %v", held, holder, err)
	}
	if held, _, _ := a.TryLock(context.Background(), "shift/x"); !held {
		t.Fatal("a no longer holds its lock")
	}

	a.Stop() // revokes its lease: gone from the list and its lock released
	waitFor(t, "b to list only b", func() bool {
		ms, _ := b.Members()
		return names(ms) == "b "
	})
	if held, _, err := b.TryLock(context.Background(), "shift/x"); err != nil || !held {
		t.Fatalf("b takes the lock of a node gone: %v %v", held, err)
	}
}

// TestMembershipLeaseLost: when the registration's lease is revoked behind
// the node's back (as when etcd was away longer than the TTL), the node
// registers again by itself.
func TestMembershipLeaseLost(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := newClient(t, srv.Endpoint)
	a, err := join(t, cli, "a")
	if err != nil {
		t.Fatal(err)
	}
	old := a.lease.Load()
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(old)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to register again", func() bool {
		ms, fresh := a.Members()
		return fresh && names(ms) == "a " && a.lease.Load() != old && a.lease.Load() != 0
	})
}
