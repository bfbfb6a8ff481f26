package certs

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// localCopy keeps a local copy of a shared storage (the fleet's etcd) so
// a node that starts or runs while etcd is unreachable still serves the
// certificates it has seen. Writes and locks go to the shared storage
// only, and a write is copied once the shared storage has it; reads go to
// the shared storage and fall back on the copy when it fails (an error
// other than fs.ErrNotExist). Nothing is ordered without the shared
// storage: its locks are not copied.
// downReadTimeout bounds a read of the shared storage while the last one
// failed, so a node reading its copy during an outage is not held up by
// etcd's full timeout on every key.
const downReadTimeout = time.Second

type localCopy struct {
	shared *EtcdStorage
	local  certmagic.Storage
	log    *slog.Logger
	down   atomic.Bool // the last read fell back on the copy; for logging once
}

var (
	_ certmagic.Storage   = (*localCopy)(nil)
	_ certmagic.TryLocker = (*localCopy)(nil)
)

func (c *localCopy) String() string { return "LocalCopy:" + c.shared.String() }

// fellBack notes, once per outage, that reads come from the copy.
func (c *localCopy) fellBack(op string, err error) {
	if !c.down.Swap(true) {
		c.log.Warn("shared certificate storage unavailable; reading the local copy", "op", op, "err", err)
	}
}

// readContext bounds a read of the shared storage: shortly while it is
// known to be down.
func (c *localCopy) readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.down.Load() {
		return context.WithTimeout(ctx, downReadTimeout)
	}
	return context.WithCancel(ctx)
}

// recovered notes that the shared storage answers again.
func (c *localCopy) recovered() {
	if c.down.Swap(false) {
		c.log.Info("shared certificate storage answers again")
	}
}

func (c *localCopy) Store(ctx context.Context, key string, value []byte) error {
	if err := c.shared.Store(ctx, key, value); err != nil {
		return err
	}
	c.copyIn(ctx, key, value)
	return nil
}

// copyIn writes value to the copy unless it is there already.
func (c *localCopy) copyIn(ctx context.Context, key string, value []byte) {
	if old, err := c.local.Load(ctx, key); err == nil && bytes.Equal(old, value) {
		return
	}
	if err := c.local.Store(ctx, key, value); err != nil {
		c.log.Warn("updating the local copy of the certificate storage failed", "key", key, "err", err)
	}
}

func (c *localCopy) Load(ctx context.Context, key string) ([]byte, error) {
	rctx, cancel := c.readContext(ctx)
	v, err := c.shared.Load(rctx, key)
	cancel()
	switch {
	case err == nil:
		c.recovered()
		c.copyIn(ctx, key, v)
		return v, nil
	case errors.Is(err, fs.ErrNotExist):
		c.recovered()
		c.dropLocal(ctx, key)
		return nil, err
	}
	c.fellBack("load", err)
	if v, lerr := c.local.Load(ctx, key); lerr == nil {
		return v, nil
	}
	return nil, err
}

func (c *localCopy) Delete(ctx context.Context, key string) error {
	if err := c.shared.Delete(ctx, key); err != nil {
		return err
	}
	c.dropLocal(ctx, key)
	return nil
}

// dropLocal removes key from the copy, and the directories it leaves
// empty, as the shared storage has no empty directories.
func (c *localCopy) dropLocal(ctx context.Context, key string) {
	if err := c.local.Delete(ctx, key); err != nil {
		c.log.Warn("updating the local copy of the certificate storage failed", "key", key, "err", err)
		return
	}
	for dir := path.Dir(key); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if keys, err := c.local.List(ctx, dir, false); err != nil || len(keys) > 0 {
			return
		}
		if err := c.local.Delete(ctx, dir); err != nil {
			return
		}
	}
}

func (c *localCopy) Exists(ctx context.Context, key string) bool {
	rctx, cancel := c.readContext(ctx)
	found, err := c.shared.exists(rctx, key)
	cancel()
	if err == nil {
		c.recovered()
		return found
	}
	c.fellBack("exists", err)
	return c.local.Exists(ctx, key)
}

func (c *localCopy) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	rctx, cancel := c.readContext(ctx)
	keys, err := c.shared.List(rctx, dir, recursive)
	cancel()
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return keys, err
	}
	c.fellBack("list", err)
	if keys, lerr := c.local.List(ctx, dir, recursive); lerr == nil {
		return keys, nil
	}
	return nil, err
}

func (c *localCopy) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	rctx, cancel := c.readContext(ctx)
	info, err := c.shared.Stat(rctx, key)
	cancel()
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return info, err
	}
	c.fellBack("stat", err)
	if info, lerr := c.local.Stat(ctx, key); lerr == nil {
		return info, nil
	}
	return certmagic.KeyInfo{}, err
}

func (c *localCopy) Lock(ctx context.Context, name string) error {
	return c.shared.Lock(ctx, name)
}

func (c *localCopy) TryLock(ctx context.Context, name string) (bool, error) {
	return c.shared.TryLock(ctx, name)
}

func (c *localCopy) Unlock(ctx context.Context, name string) error {
	return c.shared.Unlock(ctx, name)
}
