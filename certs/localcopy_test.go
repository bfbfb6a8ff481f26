package certs

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/meridian-edge/meridian/internal/etcdtest"
)

func TestLocalCopyReadsWhileEtcdIsDown(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	shared := newTestStorage(t, srv.Client(t), "/fleet/certs/")
	other := newTestStorage(t, srv.Client(t), "/fleet/certs/") // another node
	dir := t.TempDir()
	c := &localCopy{shared: shared, local: &certmagic.FileStorage{Path: dir}, log: testLogger(t)}
	ctx := testCtx(t)

	if err := c.Store(ctx, "certificates/ca/a/a.crt", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(ctx, "certificates/ca/b/b.crt", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(ctx, "certificates/ca/c/c.crt", []byte("gone soon")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"certificates/ca/b/b.crt", "certificates/ca/c/c.crt"} {
		if _, err := c.Load(ctx, k); err != nil { // read once: copied
			t.Fatal(err)
		}
	}
	// Another node deletes; reading it here drops it from the copy.
	if err := other.Delete(ctx, "certificates/ca/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, "certificates/ca/c/c.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a deleted key: %v, want fs.ErrNotExist", err)
	}
	if got, _ := c.Load(ctx, "certificates/ca/zz"); got != nil {
		t.Fatal("loaded a key never stored")
	}

	srv.Stop()
	start := time.Now()
	down := func() context.Context {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	for k, want := range map[string]string{"certificates/ca/a/a.crt": "mine", "certificates/ca/b/b.crt": "theirs"} {
		if got, err := c.Load(down(), k); err != nil || string(got) != want {
			t.Errorf("Load(%q) with etcd down = %q, %v; want %q from the copy", k, got, err, want)
		}
	}
	if _, err := c.Load(down(), "certificates/ca/c/c.crt"); err == nil {
		t.Error("a key deleted from the fleet was read from the copy")
	}
	if !c.Exists(down(), "certificates/ca/a") {
		t.Error("Exists with etcd down: false, want true from the copy")
	}
	if got, err := c.List(down(), "certificates/ca", false); err != nil || !slices.Equal(got, []string{"certificates/ca/a", "certificates/ca/b"}) {
		t.Errorf("List with etcd down = %q, %v", got, err)
	}
	if fi, err := c.Stat(down(), "certificates/ca/b/b.crt"); err != nil || fi.Size != 6 {
		t.Errorf("Stat with etcd down = %+v, %v", fi, err)
	}
	// The first read waits for etcd's timeout; the next ones only briefly.
	if d := time.Since(start); d > etcdOpTimeout+5*downReadTimeout+5*time.Second {
		t.Errorf("six reads with etcd down took %s", d)
	}
	// Nothing is written or locked without etcd.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if err := c.Store(short, "certificates/ca/d/d.crt", []byte("x")); err == nil {
		t.Error("Store with etcd down succeeded")
	}
	if err := c.Lock(short, "issue_cert_a"); err == nil {
		t.Error("Lock with etcd down succeeded")
	}
	if (&certmagic.FileStorage{Path: dir}).Exists(ctx, "certificates/ca/d/d.crt") {
		t.Error("a refused Store reached the copy")
	}
}
