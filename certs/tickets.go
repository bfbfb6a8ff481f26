package certs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults of TicketKeys.
const (
	// DefaultTicketRotation is how often a new session ticket key is made.
	DefaultTicketRotation = 12 * time.Hour
	// DefaultTicketKeys is how many keys are kept, the current one
	// included: a ticket stays usable for up to this many rotations.
	DefaultTicketKeys = 3
	// ticketRetry is the pause before trying etcd again after it failed.
	ticketRetry = 2 * time.Second
	// ticketStartWait bounds how long Start waits for the first keys.
	ticketStartWait = 5 * time.Second
)

// TicketKeys shares TLS session ticket keys among the nodes of a fleet
// through one etcd key, so a client resumes its session on any node and
// after a restart. The key holds the ticket keys newest first: the newest
// encrypts new tickets, all of them decrypt. Every node checks the age of
// the newest and, once it is older than the rotation interval, replaces
// the list in a transaction that compares the key's revision, so one
// rotation wins per interval and the others adopt it through their watch.
//
// Attached tls.Configs get the keys with SetSessionTicketKeys, now and on
// every change; until the first keys arrive (etcd unreachable at start)
// they keep Go's own per-process keys.
type TicketKeys struct {
	cli    *clientv3.Client
	key    string
	rotate time.Duration
	keep   int
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex
	configs []*tls.Config
	keys    [][32]byte // newest first; nil until loaded
	newest  time.Time  // creation of keys[0]

	life   sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// TicketKeysOptions tune TicketKeys; the zero value is usable.
type TicketKeysOptions struct {
	Rotation time.Duration    // 0 = DefaultTicketRotation
	Keep     int              // keys kept, the current one included; 0 = DefaultTicketKeys
	Now      func() time.Time // nil = time.Now
	Logger   *slog.Logger     // nil = slog.Default()
}

// storedTicketKeys is the etcd value.
type storedTicketKeys struct {
	Keys []storedTicketKey `json:"keys"` // newest first
}

type storedTicketKey struct {
	Created time.Time `json:"created"`
	Key     []byte    `json:"key"` // 32 bytes, base64 in JSON
}

// NewTicketKeys returns shared ticket keys kept at the etcd key key
// ("/meridian/tls/session-ticket-keys"). It starts nothing: Start does.
func NewTicketKeys(cli *clientv3.Client, key string, opts TicketKeysOptions) (*TicketKeys, error) {
	if cli == nil {
		return nil, errors.New("shared session ticket keys: no etcd client")
	}
	if key == "" || key == "/" {
		return nil, fmt.Errorf("shared session ticket keys: key %q: want an etcd key such as /meridian/tls/session-ticket-keys", key)
	}
	k := &TicketKeys{cli: cli, key: key, rotate: opts.Rotation, keep: opts.Keep, now: opts.Now, log: opts.Logger}
	if k.rotate == 0 {
		k.rotate = DefaultTicketRotation
	}
	if k.rotate < time.Second {
		return nil, fmt.Errorf("shared session ticket keys: rotation %s: want at least 1s", k.rotate)
	}
	if k.keep == 0 {
		k.keep = DefaultTicketKeys
	}
	if k.keep < 2 {
		return nil, fmt.Errorf("shared session ticket keys: keep %d: want at least 2, the current key and the one before", k.keep)
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	k.log = k.log.With("component", "certs", "tickets", "etcd")
	return k, nil
}

// Attach makes cfg use the shared keys from now on. cfg must be the
// configuration the listener uses, not a copy made before: a clone made
// later keeps the keys of the moment.
func (k *TicketKeys) Attach(cfg *tls.Config) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.configs = append(k.configs, cfg)
	if k.keys != nil {
		cfg.SetSessionTicketKeys(k.keys)
	}
}

// Keys returns the keys in use, newest first; nil before the first load.
func (k *TicketKeys) Keys() [][32]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.keys)
}

// Start loads the keys, creating the first one when etcd has none, then
// follows and rotates them until Stop. It waits a few seconds at most for
// the first keys; when etcd does not answer, it goes on trying in the
// background.
func (k *TicketKeys) Start(ctx context.Context) error {
	k.life.Lock()
	defer k.life.Unlock()
	if k.done != nil {
		return errors.New("starting shared session ticket keys: already started")
	}
	ctx, k.cancel = context.WithCancel(ctx)
	k.done = make(chan struct{})
	first := make(chan struct{})
	go func() {
		defer close(k.done)
		k.run(ctx, first)
	}()
	select {
	case <-first:
	case <-time.After(ticketStartWait):
		k.log.Warn("session ticket keys not shared yet: etcd has not answered; tickets are this node's own until it does")
	}
	return nil
}

// Stop ends following and rotating; attached configurations keep the
// last keys. Safe before Start and more than once.
func (k *TicketKeys) Stop() {
	k.life.Lock()
	defer k.life.Unlock()
	if k.cancel != nil {
		k.cancel()
		<-k.done
	}
}

// run keeps the keys current until ctx ends; first is closed once keys
// have been loaded.
func (k *TicketKeys) run(ctx context.Context, first chan<- struct{}) {
	var once sync.Once
	failing := false
	for ctx.Err() == nil {
		rev, err := k.sync(ctx)
		if err == nil {
			once.Do(func() { close(first) })
			if failing {
				k.log.Info("session ticket keys shared through etcd again")
				failing = false
			}
			err = k.follow(ctx, rev)
		}
		if ctx.Err() != nil {
			return
		}
		if !failing {
			k.log.Warn("session ticket keys: etcd unavailable; keeping the last keys", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(ticketRetry):
		}
	}
}

// sync reads the stored keys, rotating them when the newest is due (or
// creating them), applies them and returns the revision they were read
// at.
func (k *TicketKeys) sync(ctx context.Context) (int64, error) {
	for {
		octx, cancel := opContext(ctx)
		resp, err := k.cli.Get(octx, k.key)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("reading session ticket keys: %w", err)
		}
		var stored storedTicketKeys
		var modRev int64 // 0: absent
		if len(resp.Kvs) > 0 {
			modRev = resp.Kvs[0].ModRevision
			if err := stored.decode(resp.Kvs[0].Value); err != nil {
				k.log.Warn("stored session ticket keys unusable; replacing them", "err", err)
				stored = storedTicketKeys{}
			}
		}
		if len(stored.Keys) > 0 {
			k.apply(stored) // in use even if rotating them fails
			if k.now().Sub(stored.Keys[0].Created) < k.rotate {
				return resp.Header.Revision, nil
			}
		}
		won, rev, err := k.rotateFrom(ctx, stored, modRev)
		if err != nil {
			return 0, err
		}
		if won {
			return rev, nil
		}
		// Another node rotated first: read what it wrote.
	}
}

// rotateFrom writes a new key in front of stored if the etcd key is still
// at modRev (0: absent), and applies the result when it wins.
func (k *TicketKeys) rotateFrom(ctx context.Context, stored storedTicketKeys, modRev int64) (bool, int64, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return false, 0, fmt.Errorf("making a session ticket key: %w", err)
	}
	next := storedTicketKeys{Keys: append([]storedTicketKey{{Created: k.now().UTC(), Key: fresh[:]}}, stored.Keys...)}
	if len(next.Keys) > k.keep {
		next.Keys = next.Keys[:k.keep]
	}
	val, err := json.Marshal(next)
	if err != nil {
		return false, 0, fmt.Errorf("encoding session ticket keys: %w", err)
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	resp, err := k.cli.Txn(octx).
		If(clientv3.Compare(clientv3.ModRevision(k.key), "=", modRev)).
		Then(clientv3.OpPut(k.key, string(val))).
		Commit()
	if err != nil {
		return false, 0, fmt.Errorf("rotating session ticket keys: %w", err)
	}
	if !resp.Succeeded {
		return false, 0, nil
	}
	k.log.Info("session ticket keys rotated", "keys", len(next.Keys))
	k.apply(next)
	return true, resp.Header.Revision, nil
}

// follow applies changes of the key after rev until the newest key is due
// for rotation (nil), the watch fails, or ctx ends.
func (k *TicketKeys) follow(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := k.cli.Watch(wctx, k.key, clientv3.WithRev(rev+1))
	for {
		k.mu.Lock()
		due := k.newest.Add(k.rotate).Sub(k.now())
		k.mu.Unlock()
		timer := time.NewTimer(max(due, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
			return nil // sync rotates
		case wr, ok := <-wch:
			timer.Stop()
			if !ok {
				return errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					return nil // sync reads again
				}
				return fmt.Errorf("watching session ticket keys: %w", err)
			}
			if n := len(wr.Events); n > 0 {
				var stored storedTicketKeys
				if err := stored.decode(wr.Events[n-1].Kv.Value); err != nil {
					return nil // deleted or unusable: sync replaces it
				}
				k.apply(stored)
			}
		}
	}
}

// apply hands the keys to every attached configuration.
func (k *TicketKeys) apply(s storedTicketKeys) {
	keys := make([][32]byte, len(s.Keys))
	for i, sk := range s.Keys {
		copy(keys[i][:], sk.Key)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if slices.Equal(keys, k.keys) {
		return
	}
	k.keys, k.newest = keys, s.Keys[0].Created
	for _, cfg := range k.configs {
		cfg.SetSessionTicketKeys(keys)
	}
}

// decode parses and checks a stored value.
func (s *storedTicketKeys) decode(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty value")
	}
	if err := json.Unmarshal(b, s); err != nil {
		return fmt.Errorf("decoding session ticket keys: %w", err)
	}
	if len(s.Keys) == 0 {
		return errors.New("no keys")
	}
	for i, sk := range s.Keys {
		if len(sk.Key) != 32 {
			return fmt.Errorf("key %d: %d bytes, want 32", i, len(sk.Key))
		}
		if sk.Created.IsZero() {
			return fmt.Errorf("key %d: no creation time", i)
		}
	}
	return nil
}
