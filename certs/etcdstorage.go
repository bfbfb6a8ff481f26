package certs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults of EtcdStorage.
const (
	// DefaultLockTTL is how long a lock outlives its holder: the TTL of the
	// lease it is bound to, which the holder keeps alive while it lives.
	DefaultLockTTL = 15 * time.Second
	// etcdOpTimeout bounds one etcd request when the caller's context has
	// no earlier deadline, so an unreachable etcd fails an operation rather
	// than hanging it.
	etcdOpTimeout = 10 * time.Second
)

// Sub-prefixes of an EtcdStorage's prefix.
const (
	storageDataDir  = "data/"  // data/<key> = the value, as stored
	storageMtimeDir = "mtime/" // mtime/<key> = RFC 3339 time of the last Store
	storageLockDir  = "locks/" // locks/<name> = lockInfo, bound to the holder's lease
)

// EtcdStorage is a certmagic.Storage on etcd: certificates, keys, ACME
// accounts and locks live under one key prefix, shared by every node of a
// fleet that uses the same prefix, so a certificate is obtained once per
// fleet.
//
// A lock is a key created only if absent and bound to a lease of its own,
// which the holder keeps alive: Unlock revokes the lease, and the lock of
// a holder that died frees itself when the lease expires (LockTTL). A
// waiter watches the key and tries again when it is deleted.
type EtcdStorage struct {
	cli     *clientv3.Client
	prefix  string
	lockTTL int64 // seconds
	owner   string
	log     *slog.Logger

	mu   sync.Mutex
	held map[string]*keptLease // by lock name
}

// lockInfo is the value of a lock key, for operators reading etcd.
type lockInfo struct {
	Owner    string    `json:"owner"`
	Acquired time.Time `json:"acquired"`
}

// EtcdStorageOptions tune an EtcdStorage; the zero value is usable.
type EtcdStorageOptions struct {
	// LockTTL is how long the lock of a holder that died lingers
	// (rounded up to whole seconds); 0 = DefaultLockTTL.
	LockTTL time.Duration
	// Owner names the holder in lock values (the node name); "" = host
	// name and process id.
	Owner  string
	Logger *slog.Logger // nil = slog.Default()
}

var (
	_ certmagic.Storage   = (*EtcdStorage)(nil)
	_ certmagic.TryLocker = (*EtcdStorage)(nil)
)

// NewEtcdStorage returns a storage under prefix ("/meridian/certs/"; a
// final slash is added when missing) on cli, which the caller owns and
// closes after Close.
func NewEtcdStorage(cli *clientv3.Client, prefix string, opts EtcdStorageOptions) (*EtcdStorage, error) {
	if cli == nil {
		return nil, errors.New("etcd certificate storage: no etcd client")
	}
	p, err := cleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("etcd certificate storage: %w", err)
	}
	ttl := opts.LockTTL
	if ttl == 0 {
		ttl = DefaultLockTTL
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("etcd certificate storage: lock ttl %s: want at least 1s", ttl)
	}
	owner := opts.Owner
	if owner == "" {
		host, _ := os.Hostname()
		owner = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &EtcdStorage{
		cli:     cli,
		prefix:  p,
		lockTTL: int64((ttl + time.Second - 1) / time.Second),
		owner:   owner,
		log:     log.With("component", "certs", "storage", "etcd"),
		held:    map[string]*keptLease{},
	}, nil
}

// cleanPrefix checks an etcd key prefix and makes it end with "/".
func cleanPrefix(prefix string) (string, error) {
	if strings.TrimSpace(prefix) == "" || strings.Trim(prefix, "/") == "" {
		return "", fmt.Errorf("prefix %q: want a non-empty key prefix such as /meridian/certs/", prefix)
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix, nil
}

func (s *EtcdStorage) String() string { return "EtcdStorage:" + s.prefix }

// opContext bounds one etcd request.
func opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < etcdOpTimeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, etcdOpTimeout)
}

// checkKey accepts a storage key: slash-separated components, none empty,
// "." or "..", no leading or trailing slash.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	for c := range strings.SplitSeq(key, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("key %q: want slash-separated names without empty, . or .. parts", key)
		}
	}
	return nil
}

func (s *EtcdStorage) dataKey(key string) string  { return s.prefix + storageDataDir + key }
func (s *EtcdStorage) mtimeKey(key string) string { return s.prefix + storageMtimeDir + key }
func (s *EtcdStorage) lockKey(name string) string { return s.prefix + storageLockDir + name }

// Store puts value at key in one transaction, which fails when key is a
// directory or one of its ancestors is a file, as on a file system.
func (s *EtcdStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("storing: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(s.dataKey(key)+"/"), "=", 0).WithPrefix(),
	}
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.dataKey(dir)), "=", 0))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(
		clientv3.OpPut(s.dataKey(key), string(value)),
		clientv3.OpPut(s.mtimeKey(key), time.Now().UTC().Format(time.RFC3339Nano)),
	).Commit()
	if err != nil {
		return fmt.Errorf("storing %q: %w", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("storing %q: a directory of that name or a file at one of its parents exists", key)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *EtcdStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("loading: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.dataKey(key))
	if err != nil {
		return nil, fmt.Errorf("loading %q: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("loading %q: %w", key, fs.ErrNotExist)
	}
	return resp.Kvs[0].Value, nil
}

// Delete removes key and, when it is a directory, everything under it, in
// one transaction. A missing key is not an error.
func (s *EtcdStorage) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	_, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(s.dataKey(key)),
		clientv3.OpDelete(s.dataKey(key)+"/", clientv3.WithPrefix()),
		clientv3.OpDelete(s.mtimeKey(key)),
		clientv3.OpDelete(s.mtimeKey(key)+"/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return fmt.Errorf("deleting %q: %w", key, err)
	}
	return nil
}

// Exists reports whether key is a file or a directory; false when etcd
// cannot tell.
func (s *EtcdStorage) Exists(ctx context.Context, key string) bool {
	found, err := s.exists(ctx, key)
	if err != nil {
		s.log.Warn("checking a key in etcd failed", "key", key, "err", err)
	}
	return found
}

// exists is Exists with etcd's error.
func (s *EtcdStorage) exists(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, nil // no such key can exist
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.dataKey(key), clientv3.WithCountOnly()),
		clientv3.OpGet(s.dataKey(key)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return false, fmt.Errorf("checking %q: %w", key, err)
	}
	for _, r := range resp.Responses {
		if r.GetResponseRange().GetCount() > 0 {
			return true, nil
		}
	}
	return false, nil
}

// List returns the keys directly in dir, or with recursive every file and
// directory under it, sorted. A missing dir is an error wrapping
// fs.ErrNotExist; a file has nothing under it.
func (s *EtcdStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	if dir != "" {
		if err := checkKey(dir); err != nil {
			return nil, fmt.Errorf("listing: %w", err)
		}
	}
	base := s.dataKey(dir)
	if dir != "" {
		base += "/"
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(base, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.dataKey(dir), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", dir, err)
	}
	under := resp.Responses[0].GetResponseRange().GetKvs()
	if len(under) == 0 {
		if dir != "" && resp.Responses[1].GetResponseRange().GetCount() > 0 {
			return nil, nil // a file
		}
		return nil, fmt.Errorf("listing %q: %w", dir, fs.ErrNotExist)
	}
	seen := map[string]bool{}
	var out []string
	add := func(rel string) {
		k := path.Join(dir, rel)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, kv := range under {
		rel := strings.TrimPrefix(string(kv.Key), base)
		if !recursive {
			first, _, _ := strings.Cut(rel, "/")
			add(first)
			continue
		}
		for i := range len(rel) {
			if rel[i] == '/' {
				add(rel[:i])
			}
		}
		add(rel)
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a file with its size and time of the last Store, or
// a directory with the latest Store under it.
func (s *EtcdStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := checkKey(key); err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.dataKey(key)),
		clientv3.OpGet(s.mtimeKey(key)),
		clientv3.OpGet(s.dataKey(key)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(s.mtimeKey(key)+"/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	r := func(i int) *clientv3.GetResponse {
		return (*clientv3.GetResponse)(resp.Responses[i].GetResponseRange())
	}
	if file := r(0).Kvs; len(file) > 0 {
		info := certmagic.KeyInfo{Key: key, Size: int64(len(file[0].Value)), IsTerminal: true}
		if m := r(1).Kvs; len(m) > 0 {
			info.Modified = parseMtime(m[0].Value)
		}
		return info, nil
	}
	if r(2).Count == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %q: %w", key, fs.ErrNotExist)
	}
	info := certmagic.KeyInfo{Key: key}
	for _, kv := range r(3).Kvs {
		if t := parseMtime(kv.Value); t.After(info.Modified) {
			info.Modified = t
		}
	}
	return info, nil
}

func parseMtime(b []byte) time.Time {
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}
	}
	return t
}

// Lock takes the named lock, waiting while another holder has it, until
// ctx ends.
func (s *EtcdStorage) Lock(ctx context.Context, name string) error {
	if err := checkKey(name); err != nil {
		return fmt.Errorf("locking: %w", err)
	}
	for {
		ok, rev, err := s.tryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		if err := s.waitUnlocked(ctx, name, rev); err != nil {
			return fmt.Errorf("locking %q: %w", name, err)
		}
	}
}

// TryLock takes the named lock if nobody holds it, without waiting.
func (s *EtcdStorage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := checkKey(name); err != nil {
		return false, fmt.Errorf("locking: %w", err)
	}
	ok, _, err := s.tryLock(ctx, name)
	return ok, err
}

// tryLock creates the lock key under a new lease if it is absent. When it
// is not, it returns the revision at which the key was seen held.
func (s *EtcdStorage) tryLock(ctx context.Context, name string) (bool, int64, error) {
	val, err := json.Marshal(lockInfo{Owner: s.owner, Acquired: time.Now().UTC()})
	if err != nil {
		return false, 0, fmt.Errorf("locking %q: %w", name, err)
	}
	lease, err := grantLease(ctx, s.cli, s.lockTTL, func() {
		s.log.Warn("certificate storage lock lost: its lease could not be kept alive", "lock", name)
	})
	if err != nil {
		return false, 0, fmt.Errorf("locking %q: %w", name, err)
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	key := s.lockKey(name)
	resp, err := s.cli.Txn(octx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lease.id))).
		Commit()
	if err != nil || !resp.Succeeded {
		_ = lease.release(context.WithoutCancel(ctx), s.cli)
		if err != nil {
			return false, 0, fmt.Errorf("locking %q: %w", name, err)
		}
		return false, resp.Header.Revision, nil
	}
	s.mu.Lock()
	s.held[name] = lease
	s.mu.Unlock()
	return true, 0, nil
}

// waitUnlocked returns when the lock key is deleted after rev (released or
// expired), or ctx ends.
func (s *EtcdStorage) waitUnlocked(ctx context.Context, name string, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.lockKey(name), clientv3.WithRev(rev+1), clientv3.WithFilterPut())
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-wch:
			if !ok {
				if err := ctx.Err(); err != nil {
					return err
				}
				return nil // the watch ended: look again
			}
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					return nil // look again
				}
				return fmt.Errorf("watching the lock: %w", err)
			}
			if len(wr.Events) > 0 {
				return nil
			}
		}
	}
}

// Unlock releases a lock this storage holds by revoking its lease. A lock
// whose lease had already expired counts as released.
func (s *EtcdStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("unlocking %q: not locked by this storage", name)
	}
	if err := l.release(ctx, s.cli); err != nil {
		return fmt.Errorf("unlocking %q: %w", name, err)
	}
	return nil
}

// Close releases every lock this storage still holds. The client stays
// open.
func (s *EtcdStorage) Close() {
	s.mu.Lock()
	names := make([]string, 0, len(s.held))
	for n := range s.held {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		if err := s.Unlock(context.Background(), n); err != nil {
			s.log.Warn("releasing a certificate storage lock failed; it expires with its lease", "lock", n, "err", err)
		}
	}
}
