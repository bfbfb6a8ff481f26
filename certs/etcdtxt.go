package certs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults of EtcdTXT.
const (
	// DefaultTXTTTL is how long the challenge records of a node that died
	// stay published: the TTL of the lease they are bound to.
	DefaultTXTTTL = 60 * time.Second
	// txtRetryMin and txtRetryMax bound the pause before the mirror lists
	// the prefix again after etcd failed it.
	txtRetryMin = 200 * time.Millisecond
	txtRetryMax = 5 * time.Second
)

// EtcdTXT is the TXTPublisher of a fleet: it publishes ACME DNS-01
// challenge records in etcd, and its mirror serves every record under its
// prefix, whichever node published it, through this node's DNS server (the
// local TXTPublisher). So the CA may ask any node of the fleet.
//
// A record is the key PREFIX/FQDN/OWNER/HASH, whose value is the TXT value;
// it is bound to the publishing node's lease, so the records of a node
// that dies are withdrawn when the lease expires. The mirror lists the
// prefix, then follows it with a watch, and lists again when the watch
// breaks (etcd unreachable, history compacted).
type EtcdTXT struct {
	cli    *clientv3.Client
	prefix string
	owner  string
	ttl    int64 // lease seconds
	local  TXTPublisher
	log    *slog.Logger

	pubMu sync.Mutex // serializes lease creation
	lease *keptLease // this node's records; nil until the first

	mu     sync.Mutex
	served map[string]txtRR // etcd key → record presented locally
	refs   map[txtRR]int    // keys presenting each record
	warned map[string]bool  // keys the local server refused, logged once
	// wrote is the etcd revision of this node's last put or delete of
	// each of its keys, until the mirror has seen that revision: a
	// listing older than the write must not undo it here.
	wrote map[string]int64

	life   sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// txtRR is one TXT value at one name.
type txtRR struct{ fqdn, value string }

// EtcdTXTOptions tune an EtcdTXT; the zero value is usable.
type EtcdTXTOptions struct {
	// Owner names this node in its record keys; "" = host name and
	// process id. A "/" in it becomes "_".
	Owner string
	// TTL is how long the records of a node that died stay published
	// (rounded up to whole seconds); 0 = DefaultTXTTTL.
	TTL    time.Duration
	Logger *slog.Logger // nil = slog.Default()
}

var _ TXTPublisher = (*EtcdTXT)(nil)

// NewEtcdTXT returns a publisher of challenge records under prefix
// ("/meridian/acme-dns/"; a final slash is added when missing) that serves
// them through local. It starts nothing: Start does.
func NewEtcdTXT(cli *clientv3.Client, prefix string, local TXTPublisher, opts EtcdTXTOptions) (*EtcdTXT, error) {
	if cli == nil {
		return nil, errors.New("etcd challenge records: no etcd client")
	}
	if local == nil {
		return nil, errors.New("etcd challenge records: no local DNS server to serve them")
	}
	p, err := cleanPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("etcd challenge records: %w", err)
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTXTTTL
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("etcd challenge records: ttl %s: want at least 1s", ttl)
	}
	owner := opts.Owner
	if owner == "" {
		host, _ := os.Hostname()
		owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &EtcdTXT{
		cli:    cli,
		prefix: p,
		owner:  strings.ReplaceAll(owner, "/", "_"),
		ttl:    int64((ttl + time.Second - 1) / time.Second),
		local:  local,
		log:    log.With("component", "certs", "records", "etcd"),
		served: map[string]txtRR{},
		refs:   map[txtRR]int{},
		warned: map[string]bool{},
		wrote:  map[string]int64{},
	}, nil
}

// recordKey is the etcd key of this node's record of value at fqdn.
func (e *EtcdTXT) recordKey(fqdn, value string) string {
	sum := sha256.Sum256([]byte(value))
	return e.prefix + fqdn + "/" + e.owner + "/" + hex.EncodeToString(sum[:8])
}

// parseRecordKey returns the name in an etcd record key.
func (e *EtcdTXT) parseRecordKey(key string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(key, e.prefix), "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || !strings.HasPrefix(key, e.prefix) {
		return "", false
	}
	return parts[0], true
}

// PresentTXT serves the record on this node at once (the local server
// checks that fqdn lies in its zones) and publishes it in etcd for the
// others; it returns once etcd has accepted it.
func (e *EtcdTXT) PresentTXT(fqdn, value string) error {
	fqdn = normalizeName(fqdn)
	if strings.Contains(fqdn, "/") {
		return fmt.Errorf("publishing txt record at %q: not a DNS name", fqdn)
	}
	rec := txtRR{fqdn, value}
	e.mu.Lock()
	err := e.local.PresentTXT(fqdn, value)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	key := e.recordKey(fqdn, value)
	rev, err := e.put(key, value)
	if err != nil {
		e.mu.Lock()
		if e.refs[rec] == 0 {
			_ = e.local.CleanupTXT(fqdn, value)
		}
		e.mu.Unlock()
		return fmt.Errorf("publishing txt record at %q in etcd: %w", fqdn, err)
	}
	e.mu.Lock()
	e.wrote[key] = rev
	e.addLocked(key, rec)
	e.mu.Unlock()
	return nil
}

// put writes key under this node's lease, granting a new one when there is
// none or the last was lost. It returns the revision of the write.
func (e *EtcdTXT) put(key, value string) (int64, error) {
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	ctx := context.Background()
	if e.lease == nil || e.lease.lost() {
		l, err := grantLease(ctx, e.cli, e.ttl, func() {
			e.log.Warn("challenge records withdrawn: their lease could not be kept alive")
		})
		if err != nil {
			return 0, err
		}
		e.lease = l
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	resp, err := e.cli.Put(octx, key, value, clientv3.WithLease(e.lease.id))
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// CleanupTXT withdraws this node's record from etcd and stops serving it
// here unless another node still publishes it.
func (e *EtcdTXT) CleanupTXT(fqdn, value string) error {
	fqdn = normalizeName(fqdn)
	key := e.recordKey(fqdn, value)
	ctx, cancel := opContext(context.Background())
	defer cancel()
	resp, err := e.cli.Delete(ctx, key)
	if err != nil {
		return fmt.Errorf("withdrawing txt record at %q from etcd: %w", fqdn, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.wrote[key] = resp.Header.Revision
	if _, ok := e.served[key]; ok {
		e.removeLocked(key)
		return nil
	}
	if e.refs[txtRR{fqdn, value}] == 0 {
		return e.local.CleanupTXT(fqdn, value)
	}
	return nil
}

// applyListing makes the served set want, what etcd held at revision
// listed. This node's own writes after the listing stand: the watch, which
// starts after the listing, brings them in order.
func (e *EtcdTXT) applyListing(want map[string]txtRR, listed int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key := range e.served {
		if _, ok := want[key]; !ok && e.wrote[key] <= listed {
			e.removeLocked(key)
		}
	}
	for key, rec := range want {
		if e.wrote[key] <= listed {
			e.addLocked(key, rec)
		}
	}
	e.seenLocked(listed)
}

// seenLocked forgets this node's writes the mirror has seen by revision
// rev; e.mu is held.
func (e *EtcdTXT) seenLocked(rev int64) {
	for key, r := range e.wrote {
		if r <= rev {
			delete(e.wrote, key)
		}
	}
}

// addLocked serves rec for key; e.mu is held.
func (e *EtcdTXT) addLocked(key string, rec txtRR) {
	if old, ok := e.served[key]; ok {
		if old == rec {
			return
		}
		e.removeLocked(key)
	}
	if e.refs[rec] == 0 {
		if err := e.local.PresentTXT(rec.fqdn, rec.value); err != nil {
			if !e.warned[key] {
				e.warned[key] = true
				e.log.Warn("challenge record from etcd not served here", "key", key, "err", err)
			}
			return
		}
	}
	delete(e.warned, key)
	e.served[key] = rec
	e.refs[rec]++
}

// removeLocked stops serving key's record unless another key carries it;
// e.mu is held.
func (e *EtcdTXT) removeLocked(key string) {
	delete(e.warned, key)
	rec, ok := e.served[key]
	if !ok {
		return
	}
	delete(e.served, key)
	if e.refs[rec]--; e.refs[rec] > 0 {
		return
	}
	delete(e.refs, rec)
	if err := e.local.CleanupTXT(rec.fqdn, rec.value); err != nil {
		e.log.Warn("removing a challenge record failed", "name", rec.fqdn, "err", err)
	}
}

// Start runs the mirror until Stop: the records under the prefix are
// listed, then followed. It does not wait for etcd: when etcd is
// unreachable the mirror keeps trying.
func (e *EtcdTXT) Start(ctx context.Context) error {
	e.life.Lock()
	defer e.life.Unlock()
	if e.done != nil {
		return errors.New("starting the challenge record mirror: already started")
	}
	ctx, e.cancel = context.WithCancel(ctx)
	e.done = make(chan struct{})
	go func() {
		defer close(e.done)
		e.mirror(ctx)
	}()
	return nil
}

// Stop ends the mirror, withdraws this node's records from etcd (revoking
// their lease) and stops serving the mirrored ones. Safe before Start and
// more than once.
func (e *EtcdTXT) Stop() {
	e.life.Lock()
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
	e.life.Unlock()
	e.pubMu.Lock()
	if e.lease != nil {
		if err := e.lease.release(context.Background(), e.cli); err != nil {
			e.log.Warn("withdrawing this node's challenge records failed; they expire with their lease", "err", err)
		}
		e.lease = nil
	}
	e.pubMu.Unlock()
	e.mu.Lock()
	for key := range e.served {
		e.removeLocked(key)
	}
	e.mu.Unlock()
}

// mirror lists and watches the prefix until ctx ends.
func (e *EtcdTXT) mirror(ctx context.Context) {
	pause := txtRetryMin
	failing := false
	for ctx.Err() == nil {
		synced, err := e.syncAndWatch(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case synced:
			e.log.Warn("challenge record watch interrupted; listing again", "err", err)
			pause, failing = txtRetryMin, false
		case !failing:
			e.log.Warn("challenge records unavailable from etcd; retrying", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, txtRetryMax)
	}
}

// syncAndWatch makes the served set what etcd holds, then applies changes
// as they come. It returns whether the listing succeeded, and why it
// ended.
func (e *EtcdTXT) syncAndWatch(ctx context.Context) (bool, error) {
	lctx, cancel := opContext(ctx)
	resp, err := e.cli.Get(lctx, e.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return false, fmt.Errorf("listing challenge records: %w", err)
	}
	want := map[string]txtRR{}
	for _, kv := range resp.Kvs {
		if name, ok := e.parseRecordKey(string(kv.Key)); ok {
			want[string(kv.Key)] = txtRR{name, string(kv.Value)}
		}
	}
	e.applyListing(want, resp.Header.Revision)

	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := e.cli.Watch(wctx, e.prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for wr := range wch {
		if err := wr.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return true, fmt.Errorf("watch history compacted: %w", err)
			}
			return true, fmt.Errorf("watching challenge records: %w", err)
		}
		e.mu.Lock()
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			switch ev.Type {
			case mvccpb.PUT:
				if name, ok := e.parseRecordKey(key); ok {
					e.addLocked(key, txtRR{name, string(ev.Kv.Value)})
				}
			case mvccpb.DELETE:
				e.removeLocked(key)
			}
		}
		e.seenLocked(wr.Header.Revision)
		e.mu.Unlock()
	}
	return true, errors.New("watch closed")
}
