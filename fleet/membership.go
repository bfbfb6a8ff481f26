package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyNodes is followed by a node's name: its registration, bound to its
// lease.
const KeyNodes = "nodes/"

// PublishInterval is how often a node rewrites its registration (its view
// of the regions and its counters).
const PublishInterval = time.Second

// ErrNameTaken is wrapped by the error of a node whose name another live
// node holds.
var ErrNameTaken = errors.New("node name already live in the fleet")

// Options configure a Membership.
type Options struct {
	Client *clientv3.Client
	Prefix string        // the fleet's key prefix, ending with "/"
	Name   string        // this node's name
	TTL    time.Duration // lease of the registration; whole seconds, at least 1s
	// Report returns this node's registration as of now; Name and Updated
	// are filled by the membership. Called every PublishInterval.
	Report  func() Member
	Timeout time.Duration // of each request; <= 0 = 2s
	Logger  *slog.Logger
	Now     func() time.Time
}

// Membership keeps this node registered and follows the others.
type Membership struct {
	o   Options
	log *slog.Logger
	key string

	lease atomic.Int64 // current lease; 0 = not registered

	mu      sync.Mutex
	members map[string]Member
	fresh   time.Time // last time the list was known to be current
	synced  bool

	published atomic.Int64 // unix nanoseconds of the last registration etcd accepted

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New prepares a membership; nothing is sent before Start.
func New(o Options) (*Membership, error) {
	if o.Client == nil || o.Name == "" || o.Report == nil {
		return nil, errors.New("fleet membership: client, name and report are required")
	}
	if o.TTL < time.Second {
		return nil, fmt.Errorf("fleet membership: ttl %s is below 1s", o.TTL)
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Membership{
		o:       o,
		log:     o.Logger.With("component", "fleet", "node", o.Name),
		key:     o.Prefix + KeyNodes + o.Name,
		members: map[string]Member{},
	}, nil
}

// Start registers the node and starts keeping the registration and the
// member list current. A name another live node holds is an error wrapping
// ErrNameTaken. When etcd cannot be reached, Start returns nil and keeps
// trying in the background.
func (m *Membership) Start(ctx context.Context) error {
	err := m.register(ctx, 0)
	if errors.Is(err, ErrNameTaken) {
		return err
	}
	if err != nil {
		m.log.Warn("fleet registration deferred: etcd unreachable", "err", err)
	}
	ctx, m.cancel = context.WithCancel(ctx)
	m.wg.Add(2)
	go m.keep(ctx)
	go m.follow(ctx)
	return nil
}

// Stop revokes the registration (the node leaves the list at once) and
// stops. Safe to call twice and after a failed Start.
func (m *Membership) Stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if id := m.lease.Swap(0); id != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), m.o.Timeout)
		_, _ = m.o.Client.Revoke(ctx, clientv3.LeaseID(id))
		cancel()
	}
}

// register grants a lease and creates the registration with it, unless
// another node's registration holds the name. old is the lease of this
// node's previous registration, which it may replace.
func (m *Membership) register(ctx context.Context, old int64) error {
	ctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	rec, err := m.record()
	if err != nil {
		return err
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(m.key), "=", 0)
	if old != 0 {
		cmp = clientv3.Compare(clientv3.LeaseValue(m.key), "=", old)
	}
	get, err := m.o.Client.Get(ctx, m.key)
	if err != nil {
		return err
	}
	if len(get.Kvs) > 0 && (old == 0 || get.Kvs[0].Lease != old) {
		return m.taken(get.Kvs[0].Value)
	}
	if len(get.Kvs) == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(m.key), "=", 0)
	}
	lease, err := m.o.Client.Grant(ctx, int64(m.o.TTL/time.Second))
	if err != nil {
		return err
	}
	resp, err := m.o.Client.Txn(ctx).If(cmp).
		Then(clientv3.OpPut(m.key, rec, clientv3.WithLease(lease.ID))).
		Else(clientv3.OpGet(m.key)).Commit()
	if err != nil {
		_, _ = m.o.Client.Revoke(context.Background(), lease.ID)
		return err
	}
	if !resp.Succeeded {
		_, _ = m.o.Client.Revoke(ctx, lease.ID)
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			return m.taken(kvs[0].Value)
		}
		return fmt.Errorf("%w: %q", ErrNameTaken, m.o.Name)
	}
	if old != 0 {
		_, _ = m.o.Client.Revoke(ctx, clientv3.LeaseID(old))
	}
	m.lease.Store(int64(lease.ID))
	m.published.Store(m.o.Now().UnixNano())
	m.log.Info("registered in the fleet", "ttl", m.o.TTL, "lease", fmt.Sprintf("%x", lease.ID))
	return nil
}

func (m *Membership) taken(val []byte) error {
	other, err := decodeMember(val)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrNameTaken, m.o.Name)
	}
	return fmt.Errorf("%w: %q (version %s, started %s, last seen %s); give this node another node.name or stop that one",
		ErrNameTaken, m.o.Name, other.Version, other.Started.UTC().Format(time.RFC3339), other.Updated.UTC().Format(time.RFC3339))
}

// record renders this node's registration now.
func (m *Membership) record() (string, error) {
	r := m.o.Report()
	r.Name = m.o.Name
	r.Updated = m.o.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encoding registration: %w", err)
	}
	return string(b), nil
}

// keep holds the lease alive, rewrites the registration every
// PublishInterval and registers again when the lease is lost (etcd away
// longer than the TTL, or a keep-alive channel that closed).
func (m *Membership) keep(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(PublishInterval)
	defer t.Stop()
	var ka <-chan *clientv3.LeaseKeepAliveResponse
	var kaCancel context.CancelFunc = func() {}
	defer func() { kaCancel() }()
	var kaLease int64
	for {
		id := m.lease.Load()
		if id == 0 {
			if err := m.register(ctx, 0); err != nil {
				if errors.Is(err, ErrNameTaken) {
					m.log.Error("cannot register in the fleet", "err", err)
				}
			}
			id = m.lease.Load()
		}
		if id != 0 && (ka == nil || kaLease != id) {
			kaCancel()
			ka, kaCancel = m.keepAlive(ctx, id)
			kaLease = id
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ka:
			if !ok {
				m.log.Warn("fleet registration lease lost: registering again")
				ka = nil
				old := m.lease.Swap(0)
				if err := m.register(ctx, old); err != nil && errors.Is(err, ErrNameTaken) {
					m.log.Error("cannot register in the fleet", "err", err)
				}
			}
			continue
		case <-t.C:
		}
		if id != 0 {
			m.publish(ctx, id)
		}
	}
}

// keepAlive starts the client's keep-alive of lease id; the function
// returned stops it. A nil channel means the keep-alive did not start.
func (m *Membership) keepAlive(ctx context.Context, id int64) (<-chan *clientv3.LeaseKeepAliveResponse, func()) {
	kctx, cancel := context.WithCancel(ctx)
	ka, err := m.o.Client.KeepAlive(kctx, clientv3.LeaseID(id))
	if err != nil {
		cancel()
		return nil, func() {}
	}
	return ka, cancel
}

// publish rewrites the registration, only while it is still this lease's.
func (m *Membership) publish(ctx context.Context, id int64) {
	rec, err := m.record()
	if err != nil {
		m.log.Error("publishing registration", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	resp, err := m.o.Client.Txn(pctx).
		If(clientv3.Compare(clientv3.LeaseValue(m.key), "=", id)).
		Then(clientv3.OpPut(m.key, rec, clientv3.WithLease(clientv3.LeaseID(id)))).
		Commit()
	if err != nil {
		return
	}
	if !resp.Succeeded {
		// The registration is gone (the lease expired): register anew.
		m.lease.CompareAndSwap(id, 0)
		return
	}
	m.published.Store(m.o.Now().UnixNano())
}

// follow keeps the member list: a full read, then a watch from after it,
// read again whenever the watch ends.
func (m *Membership) follow(ctx context.Context) {
	defer m.wg.Done()
	prefix := m.o.Prefix + KeyNodes
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
		resp, err := m.o.Client.Get(rctx, prefix, clientv3.WithPrefix())
		cancel()
		if err != nil {
			m.mu.Lock()
			m.synced = false
			m.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(PublishInterval):
			}
			continue
		}
		list := map[string]Member{}
		for _, kv := range resp.Kvs {
			if mb, err := decodeMember(kv.Value); err == nil {
				list[mb.Name] = mb
			}
		}
		m.mu.Lock()
		m.members, m.synced, m.fresh = list, true, m.o.Now()
		m.mu.Unlock()
		m.watch(ctx, prefix, resp.Header.Revision+1)
		m.mu.Lock()
		m.synced = false
		m.mu.Unlock()
	}
}

func (m *Membership) watch(ctx context.Context, prefix string, from int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := m.o.Client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	// A watch on an etcd that went away stays open and resumes where it
	// stopped when etcd is back; meanwhile publish failures mark the list
	// stale (Members).
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil || resp.Canceled || resp.CompactRevision != 0 {
				return
			}
			m.mu.Lock()
			for _, ev := range resp.Events {
				name := string(ev.Kv.Key[len(prefix):])
				if ev.Type == mvccpb.DELETE {
					delete(m.members, name)
					continue
				}
				if mb, err := decodeMember(ev.Kv.Value); err == nil {
					m.members[mb.Name] = mb
				}
			}
			m.fresh = m.o.Now()
			m.mu.Unlock()
		}
	}
}

// Members returns the live nodes by name, and whether the list is current
// (etcd answers); a stale list is the last one seen.
func (m *Membership) Members() ([]Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mb := range m.members {
		out = append(out, mb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	recent := m.o.Now().Sub(time.Unix(0, m.published.Load())) < staleAfter
	return out, m.synced && m.lease.Load() != 0 && recent
}

// staleAfter is how long after the last registration etcd accepted the
// member list still counts as current.
const staleAfter = 3 * PublishInterval

// Registered reports whether the node holds a live registration.
func (m *Membership) Registered() bool { return m.lease.Load() != 0 }
