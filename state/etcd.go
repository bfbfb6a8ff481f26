package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrUnavailable is wrapped by every error of a store whose backend cannot
// be reached: a change refused with it was not made.
var ErrUnavailable = errors.New("state backend unavailable")

// Keys of the etcd backend, relative to the fleet's prefix.
const (
	// EtcdKeyState holds the operator snapshot (everything but the audit
	// log) as one JSON document; every change replaces it in a transaction
	// that compares its ModRevision.
	EtcdKeyState = "state"
	// EtcdKeyAudit is followed by an audit entry's Seq in 20 digits; each
	// entry is one JSON document.
	EtcdKeyAudit = "state/audit/"
)

// maxUpdateAttempts bounds how often Update re-runs its function when other
// nodes keep changing the state between its read and its write.
const maxUpdateAttempts = 16

// probeInterval is how often the store checks that etcd answers; a change
// of reachability is noticed within about this long plus the timeout.
const probeInterval = time.Second

// EtcdOptions tune an etcd store.
type EtcdOptions struct {
	Prefix   string           // every key lives under it; must end with "/"
	Timeout  time.Duration    // of each request; <= 0 = 2s
	Cache    string           // file keeping the last fleet state seen, for a start while etcd is away; "" = none
	Now      func() time.Time // clock for audit times; nil = time.Now
	Logger   *slog.Logger     // nil = slog.Default()
	AuditCap int              // audit entries kept; <= 0 = DefaultAuditCap
}

// Etcd is the etcd backend of Store, shared by the nodes of a fleet. The
// snapshot without its audit log is one key (EtcdKeyState); each audit
// entry is a key of its own (EtcdKeyAudit), the oldest deleted beyond
// AuditCap. Update is one transaction comparing the ModRevision of the
// state key it read, retried on a newer state, so concurrent changes from
// different nodes never overwrite each other. A watch applies the other
// nodes' changes; when etcd cannot be reached, Load goes on returning the
// last state seen and Update fails with ErrUnavailable.
//
// The document is the JSON of Snapshot plus "audit_seq": a field added to
// Snapshot is stored, watched and cached with no code here.
type Etcd struct {
	cli      *clientv3.Client
	prefix   string
	timeout  time.Duration
	cache    string
	now      func() time.Time
	log      *slog.Logger
	auditCap int

	writeMu sync.Mutex // serialises Update
	cacheMu sync.Mutex // serialises saveCache

	mu       sync.Mutex
	cur      Snapshot // published state; Audit included
	rev      int64    // ModRevision of the state key cur comes from; 0 = none stored
	readRev  int64    // etcd revision the store has read up to
	pending  string   // the document an Update in flight writes, not echoed by the watch
	seq      uint64   // newest audit Seq stored
	synced   bool     // cur is what etcd held when the watch started
	watchers map[chan Snapshot]struct{}

	connected atomic.Bool
	since     atomic.Pointer[time.Time] // when connected last changed
	lastErr   atomic.Pointer[string]

	resync  chan struct{} // asks the watch loop to read everything again
	done    chan struct{} // closed by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
	closeMu sync.Mutex
}

var _ Store = (*Etcd)(nil)

// etcdDoc is the stored form of the state key.
type etcdDoc struct {
	Snapshot
	AuditSeq uint64 `json:"audit_seq"`
}

// OpenEtcd reads the fleet's state through cli, which the caller owns and
// closes after the store. When etcd cannot be reached within the timeout,
// the store starts from the state last saved in opts.Cache (logged as
// such) and resynchronises by itself when etcd answers; with no saved
// state that is an error wrapping ErrUnavailable.
func OpenEtcd(cli *clientv3.Client, opts EtcdOptions) (*Etcd, error) {
	if cli == nil {
		return nil, errors.New("opening etcd state: no client")
	}
	if opts.Prefix == "" || opts.Prefix[len(opts.Prefix)-1] != '/' {
		return nil, fmt.Errorf("opening etcd state: prefix %q must end with /", opts.Prefix)
	}
	e := &Etcd{
		cli:      cli,
		prefix:   opts.Prefix,
		timeout:  opts.Timeout,
		cache:    opts.Cache,
		now:      opts.Now,
		log:      opts.Logger,
		auditCap: opts.AuditCap,
		watchers: map[chan Snapshot]struct{}{},
		resync:   make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if e.timeout <= 0 {
		e.timeout = 2 * time.Second
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.log = e.log.With("component", "state", "backend", "etcd", "prefix", e.prefix)
	if e.auditCap <= 0 {
		e.auditCap = DefaultAuditCap
	}
	t := e.now()
	e.since.Store(&t)

	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	err := e.readAll(ctx)
	cancel()
	if err != nil {
		if e.cache == "" {
			return nil, fmt.Errorf("opening etcd state: %w: %v", ErrUnavailable, err)
		}
		snap, cerr := readCache(e.cache)
		if cerr != nil {
			return nil, fmt.Errorf("opening etcd state: %w: %v; and no saved fleet state to start from: %v", ErrUnavailable, err, cerr)
		}
		e.cur = snap
		if len(snap.Audit) > 0 {
			e.seq = snap.Audit[len(snap.Audit)-1].Seq
		}
		e.setConnected(false, err)
		e.log.Warn("etcd unreachable at start: serving the fleet state saved on disk until it answers",
			"cache", e.cache, "generation", snap.Generation, "err", err)
	} else {
		e.setConnected(true, nil)
		e.saveCache()
	}

	ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(2)
	go e.watchLoop(ctx)
	go e.probeLoop(ctx)
	return e, nil
}

// Client returns the etcd client the store uses, for the other fleet-wide
// parts of a node (membership, certificates) to share one connection.
func (e *Etcd) Client() *clientv3.Client { return e.cli }

// Prefix returns the fleet's key prefix.
func (e *Etcd) Prefix() string { return e.prefix }

// Status reports whether etcd answered the last probe, since when that
// holds, and the last error when it did not.
func (e *Etcd) Status() (connected bool, since time.Time, lastErr string) {
	if p := e.lastErr.Load(); p != nil {
		lastErr = *p
	}
	return e.connected.Load(), *e.since.Load(), lastErr
}

// Revision returns the ModRevision of the stored state the store holds; 0
// when the prefix holds no state yet (or etcd was never reached).
func (e *Etcd) Revision() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rev
}

func (e *Etcd) setConnected(up bool, err error) {
	if err != nil {
		s := err.Error()
		e.lastErr.Store(&s)
	}
	if e.connected.Swap(up) == up && e.since.Load() != nil {
		return
	}
	t := e.now()
	e.since.Store(&t)
}

func (e *Etcd) key(k string) string { return e.prefix + k }

func (e *Etcd) auditKey(seq uint64) string {
	return fmt.Sprintf("%s%s%020d", e.prefix, EtcdKeyAudit, seq)
}

// Load implements Store: the last state seen, even while etcd is away.
func (e *Etcd) Load() (Snapshot, error) {
	if e.closed.Load() {
		return Snapshot{}, fmt.Errorf("loading state: %w", errClosed)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur.Clone(), nil
}

// Update implements Store. fn runs on the newest state this node holds; if
// the transaction finds the stored state changed meanwhile, the store reads
// it and runs fn again on it, so a check fn makes (an If-Match) holds
// fleet-wide. A change is answered only once etcd accepted it.
func (e *Etcd) Update(fn func(*Snapshot) error, audit ...AuditEntry) (Snapshot, error) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	if e.closed.Load() {
		return Snapshot{}, fmt.Errorf("updating state: %w", errClosed)
	}
	e.mu.Lock()
	cur, rev, seq, synced := e.cur.Clone(), e.rev, e.seq, e.synced
	e.mu.Unlock()
	if !synced || !e.connected.Load() {
		msg := "not connected to etcd"
		if p := e.lastErr.Load(); p != nil {
			msg = *p
		}
		return Snapshot{}, fmt.Errorf("%w: %s", ErrUnavailable, msg)
	}
	for range maxUpdateAttempts {
		next := cur.Clone()
		if err := fn(&next); err != nil {
			return Snapshot{}, err
		}
		next.Version = FormatVersion
		next.Generation = cur.Generation + 1
		added := stampAudit(seq, e.now(), audit)
		next.Audit = capAudit(cur.Audit, added, e.auditCap)
		next.normalize()
		if err := next.Validate(); err != nil {
			return Snapshot{}, fmt.Errorf("updating state: invalid result: %w", err)
		}
		newSeq := seq + uint64(len(added))
		doc := etcdDoc{Snapshot: next, AuditSeq: newSeq}
		doc.Audit = nil
		b, err := json.Marshal(doc)
		if err != nil {
			return Snapshot{}, fmt.Errorf("updating state: encoding: %w", err)
		}
		ops := []clientv3.Op{clientv3.OpPut(e.key(EtcdKeyState), string(b))}
		for _, a := range added {
			ab, err := json.Marshal(a)
			if err != nil {
				return Snapshot{}, fmt.Errorf("updating state: encoding audit entry: %w", err)
			}
			ops = append(ops, clientv3.OpPut(e.auditKey(a.Seq), string(ab)))
		}
		if keep := uint64(max(e.auditCap, 1)); newSeq > keep && len(added) > 0 {
			// Drop the entries beyond the cap, in the same transaction.
			ops = append(ops, clientv3.OpDelete(e.auditKey(0), clientv3.WithRange(e.auditKey(newSeq-keep+1))))
		}
		e.mu.Lock()
		e.pending = string(b)
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		resp, err := e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(e.key(EtcdKeyState)), "=", rev)).
			Then(ops...).
			Else(e.readOps()...).
			Commit()
		cancel()
		e.mu.Lock()
		e.pending = ""
		e.mu.Unlock()
		if err != nil {
			e.noteFailure(err)
			return Snapshot{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if !resp.Succeeded {
			// Another node changed the state since it was read: take its
			// state and decide again on it.
			st, r, s, err := e.decodeRead(resp.Responses)
			if err != nil {
				return Snapshot{}, fmt.Errorf("updating state: %w", err)
			}
			e.apply(st, r, s, true)
			e.saveCache()
			cur, rev, seq = st, r, s
			continue
		}
		e.apply(next, resp.Header.Revision, newSeq, false)
		e.saveCache() // before the change is answered, even if the watch applied it first
		e.log.Debug("state written", "generation", next.Generation, "revision", resp.Header.Revision, "audit_entries", len(added))
		return next.Clone(), nil
	}
	return Snapshot{}, fmt.Errorf("updating state: the state kept changing under %d attempts; try again", maxUpdateAttempts)
}

// stampAudit fills Seq (continuing from seq) and, when zero, Time of a copy
// of entries.
func stampAudit(seq uint64, now time.Time, entries []AuditEntry) []AuditEntry {
	if len(entries) == 0 {
		return nil
	}
	out := make([]AuditEntry, len(entries))
	for i, a := range entries {
		seq++
		a.Seq = seq
		if a.Time.IsZero() {
			a.Time = now.UTC()
		}
		out[i] = a
	}
	return out
}

// readOps read the state key and the newest audit entries in one revision.
func (e *Etcd) readOps() []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpGet(e.key(EtcdKeyState)),
		clientv3.OpGet(e.key(EtcdKeyAudit), clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(e.auditCap))),
	}
}

// decodeRead turns the answers of readOps into the state, the state key's
// ModRevision and the newest audit Seq. A prefix with no state is Empty().
func (e *Etcd) decodeRead(rs []*etcdResponseOp) (Snapshot, int64, uint64, error) {
	if len(rs) != 2 {
		return Snapshot{}, 0, 0, fmt.Errorf("reading etcd state: %d answers, want 2", len(rs))
	}
	st, rev, seq := Empty(), int64(0), uint64(0)
	if kvs := rs[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		var err error
		st, seq, err = decodeDoc(kvs[0].Value)
		if err != nil {
			return Snapshot{}, 0, 0, fmt.Errorf("reading etcd key %s: %w", kvs[0].Key, err)
		}
		rev = kvs[0].ModRevision
	}
	kvs := rs[1].GetResponseRange().GetKvs()
	audit := make([]AuditEntry, 0, len(kvs))
	for i := len(kvs) - 1; i >= 0; i-- {
		a, err := decodeAudit(kvs[i].Value)
		if err != nil {
			return Snapshot{}, 0, 0, fmt.Errorf("reading etcd key %s: %w", kvs[i].Key, err)
		}
		audit = append(audit, a)
	}
	st.Audit = audit
	if err := st.Validate(); err != nil {
		return Snapshot{}, 0, 0, fmt.Errorf("reading etcd state: invalid: %w", err)
	}
	return st, rev, seq, nil
}

// decodeDoc parses the state key's value.
func decodeDoc(b []byte) (Snapshot, uint64, error) {
	s, err := decode(b)
	if err != nil {
		return Snapshot{}, 0, err
	}
	var extra struct {
		AuditSeq uint64 `json:"audit_seq"`
	}
	if err := json.Unmarshal(b, &extra); err != nil {
		return Snapshot{}, 0, fmt.Errorf("parsing: %w", err)
	}
	s.Audit = []AuditEntry{}
	return s, extra.AuditSeq, nil
}

func decodeAudit(b []byte) (AuditEntry, error) {
	var a AuditEntry
	if err := json.Unmarshal(b, &a); err != nil {
		return AuditEntry{}, fmt.Errorf("parsing audit entry: %w", err)
	}
	if a.Seq == 0 {
		return AuditEntry{}, errors.New("audit entry without seq")
	}
	return a, nil
}

// readAll reads the whole state and marks the store synchronised.
func (e *Etcd) readAll(ctx context.Context) error {
	resp, err := e.cli.Txn(ctx).Then(e.readOps()...).Commit()
	if err != nil {
		return err
	}
	st, rev, seq, err := e.decodeRead(resp.Responses)
	if err != nil {
		return err
	}
	e.mu.Lock()
	changed := rev != e.rev || seq != e.seq || st.Generation != e.cur.Generation
	e.cur, e.rev, e.seq, e.synced = st, rev, seq, true
	e.readRev = resp.Header.Revision
	e.mu.Unlock()
	if changed {
		e.publish()
	}
	return nil
}

// apply takes a newer state: one read after a refused transaction, one this
// store wrote (echo false: watchers are not told of their own change) or
// one the watch delivered.
func (e *Etcd) apply(st Snapshot, rev int64, seq uint64, echo bool) {
	e.mu.Lock()
	if rev <= e.rev && rev != 0 {
		e.mu.Unlock()
		return
	}
	e.cur, e.rev, e.seq = st, rev, seq
	e.mu.Unlock()
	if echo {
		e.publish()
	}
}

// saveCache writes the state to the cache file, for a start while etcd is
// away. A failure is logged: the fleet state itself is safe in etcd.
func (e *Etcd) saveCache() {
	if e.cache == "" {
		return
	}
	// One save at a time, each of the state as it is when it starts: the
	// last to finish wrote the newest.
	e.cacheMu.Lock()
	defer e.cacheMu.Unlock()
	e.mu.Lock()
	s := e.cur.Clone()
	e.mu.Unlock()
	if _, err := writeAtomic(e.cache, &s); err != nil {
		e.log.Warn("saving the fleet state on disk", "cache", e.cache, "err", err)
	}
}

// readCache reads the fleet state a node saved on disk.
func readCache(path string) (Snapshot, error) {
	if _, err := os.Stat(path); err != nil {
		return Snapshot{}, err
	}
	return readFile(path)
}

// Watch implements Store: the state each time another node changes it (or
// a resynchronisation finds it changed). A slow reader gets the newest
// state, not every one.
func (e *Etcd) Watch(ctx context.Context) <-chan Snapshot {
	ch := make(chan Snapshot, 1)
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed.Load() || ctx.Err() != nil {
		close(ch)
		return ch
	}
	e.mu.Lock()
	e.watchers[ch] = struct{}{}
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		select {
		case <-ctx.Done():
		case <-e.done:
		}
		e.mu.Lock()
		if _, ok := e.watchers[ch]; ok {
			delete(e.watchers, ch)
			close(ch)
		}
		e.mu.Unlock()
	}()
	return ch
}

// publish hands the current state to every watcher, replacing one it has
// not read yet.
func (e *Etcd) publish() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.watchers {
		select {
		case <-ch:
		default:
		}
		ch <- e.cur.Clone()
	}
}

// Close stops the watch, closes every Watch channel and waits for them.
// The client stays open: it belongs to the caller.
func (e *Etcd) Close() error {
	e.closeMu.Lock()
	if e.closed.Swap(true) {
		e.closeMu.Unlock()
		return nil
	}
	e.cancel()
	close(e.done)
	e.mu.Lock()
	for ch := range e.watchers {
		delete(e.watchers, ch)
		close(ch)
	}
	e.mu.Unlock()
	e.closeMu.Unlock()
	e.wg.Wait()
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	return nil
}
