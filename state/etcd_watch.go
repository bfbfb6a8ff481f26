package state

import (
	"context"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

type etcdResponseOp = etcdserverpb.ResponseOp

// watchLoop keeps the store in step with etcd: a full read, then a watch
// from the revision after it, until the watch ends (compaction, a lost
// leader, a resynchronisation asked by the probe); then again.
func (e *Etcd) watchLoop(ctx context.Context) {
	defer e.wg.Done()
	for ctx.Err() == nil {
		e.mu.Lock()
		synced := e.synced
		e.mu.Unlock()
		if !synced {
			rctx, cancel := context.WithTimeout(ctx, e.timeout)
			err := e.readAll(rctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					e.noteFailure(err)
				}
				select {
				case <-ctx.Done():
					return
				case <-e.resync:
				case <-time.After(probeInterval):
				}
				continue
			}
			e.noteSuccess()
			e.saveCache()
		}
		e.watch(ctx)
		e.mu.Lock()
		e.synced = false
		e.mu.Unlock()
	}
}

// watch follows the state keys until the watch ends or a resynchronisation
// is asked for.
func (e *Etcd) watch(ctx context.Context) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	e.mu.Lock()
	from := e.headRev()
	e.mu.Unlock()
	wch := e.cli.Watch(wctx, e.key(EtcdKeyState), clientv3.WithPrefix(), clientv3.WithRev(from))
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.resync:
			return
		case resp, ok := <-wch:
			if !ok {
				return
			}
			if resp.CompactRevision != 0 {
				e.log.Info("state watch compacted: reading the whole state again", "compact_revision", resp.CompactRevision)
				return
			}
			if err := resp.Err(); err != nil {
				e.noteFailure(err)
				return
			}
			if resp.Canceled {
				return
			}
			e.applyEvents(resp.Events)
		}
	}
}

// headRev is the revision the watch starts from: after the last one read.
// e.mu must be held.
func (e *Etcd) headRev() int64 {
	return e.readRev + 1
}

// applyEvents applies one watch answer: audit entries first (they belong to
// the same transaction as the state they come with), then the state.
func (e *Etcd) applyEvents(evs []*clientv3.Event) {
	var (
		doc     *clientv3.Event
		added   []AuditEntry
		lastRev int64
		own     bool
	)
	for _, ev := range evs {
		lastRev = max(lastRev, ev.Kv.ModRevision)
		k := string(ev.Kv.Key)
		switch {
		case k == e.key(EtcdKeyState):
			doc = ev
		case strings.HasPrefix(k, e.key(EtcdKeyAudit)) && ev.Type == mvccpb.PUT:
			a, err := decodeAudit(ev.Kv.Value)
			if err != nil {
				e.log.Warn("ignoring a bad audit entry", "key", k, "err", err)
				continue
			}
			added = append(added, a)
		}
	}
	e.mu.Lock()
	e.readRev = max(e.readRev, lastRev)
	changed := false
	for _, a := range added {
		if a.Seq > e.lastAudit() {
			e.cur.Audit = capAudit(e.cur.Audit, []AuditEntry{a}, e.auditCap)
			changed = true
		}
	}
	if doc != nil && (doc.Kv.ModRevision > e.rev || doc.Type == mvccpb.DELETE) {
		if doc.Type == mvccpb.DELETE {
			audit := e.cur.Audit
			e.cur, e.rev, e.seq = Empty(), 0, 0
			e.cur.Audit = audit
			changed = true
		} else if st, seq, err := decodeDoc(doc.Kv.Value); err != nil {
			e.log.Warn("ignoring a bad state document", "revision", doc.Kv.ModRevision, "err", err)
		} else {
			st.Audit = e.cur.Audit
			e.cur, e.rev, e.seq = st, doc.Kv.ModRevision, seq
			changed = true
			// This store's own write, seen before Update recorded it, is
			// not told to watchers.
			own = string(doc.Kv.Value) == e.pending
		}
	}
	e.mu.Unlock()
	if changed {
		if !own {
			e.publish()
		}
		e.saveCache()
	}
}

// lastAudit is the newest audit Seq held. e.mu must be held.
func (e *Etcd) lastAudit() uint64 {
	if n := len(e.cur.Audit); n > 0 {
		return e.cur.Audit[n-1].Seq
	}
	return 0
}

// probeLoop asks etcd for the state key every probeInterval: a failure
// marks the store disconnected; the first success after one, or a state
// newer than the watch delivered, asks for a resynchronisation.
func (e *Etcd) probeLoop(ctx context.Context) {
	defer e.wg.Done()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	behind := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, min(e.timeout, probeInterval))
		resp, err := e.cli.Get(pctx, e.key(EtcdKeyState), clientv3.WithKeysOnly())
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				e.noteFailure(err)
			}
			continue
		}
		wasDown := !e.connected.Load()
		e.noteSuccess()
		var stored int64
		if len(resp.Kvs) > 0 {
			stored = resp.Kvs[0].ModRevision
		}
		e.mu.Lock()
		if stored != e.rev {
			behind++
		} else {
			behind = 0
		}
		e.mu.Unlock()
		if wasDown || behind >= 2 {
			behind = 0
			e.askResync()
		}
	}
}

func (e *Etcd) askResync() {
	select {
	case e.resync <- struct{}{}:
	default:
	}
}

func (e *Etcd) noteFailure(err error) {
	if e.connected.Load() {
		e.log.Warn("etcd unreachable: serving the last state; changes are refused until it answers", "err", err)
	}
	e.setConnected(false, err)
}

func (e *Etcd) noteSuccess() {
	if !e.connected.Load() {
		_, since, _ := e.Status()
		e.log.Info("etcd reachable again: resynchronising", "down_for", e.now().Sub(since).Round(time.Millisecond))
	}
	e.setConnected(true, nil)
}
