package fleet

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyLocks is followed by a lock's name; its value is the holder's node
// name, bound to the holder's registration lease, so that a lock dies with
// its node.
const KeyLocks = "locks/"

// errNotRegistered is the error of a lock asked for before the node holds
// a registration lease.
var errNotRegistered = errors.New("not registered in the fleet")

// TryLock takes the lock name for this node unless another live node holds
// it. It reports whether this node holds it now and, when not, who does.
// A lock this node took under an earlier lease (before it registered
// again) is carried over to the current one.
func (m *Membership) TryLock(ctx context.Context, name string) (held bool, holder string, err error) {
	lease := m.lease.Load()
	if lease == 0 {
		return false, "", errNotRegistered
	}
	key := m.o.Prefix + KeyLocks + name
	ctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	resp, err := m.o.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, m.o.Name, clientv3.WithLease(clientv3.LeaseID(lease)))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return false, "", err
	}
	if resp.Succeeded {
		return true, m.o.Name, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return false, "", nil // released meanwhile; the next try takes it
	}
	kv := kvs[0]
	holder = string(kv.Value)
	switch {
	case holder != m.o.Name:
		return false, holder, nil
	case kv.Lease == lease:
		return true, holder, nil
	}
	moved, err := m.o.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", kv.Lease), clientv3.Compare(clientv3.Value(key), "=", m.o.Name)).
		Then(clientv3.OpPut(key, m.o.Name, clientv3.WithLease(clientv3.LeaseID(lease)))).Commit()
	if err != nil {
		return false, "", err
	}
	return moved.Succeeded, m.o.Name, nil
}

// Unlock releases the lock name if this node holds it.
func (m *Membership) Unlock(ctx context.Context, name string) error {
	key := m.o.Prefix + KeyLocks + name
	ctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	_, err := m.o.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", m.o.Name)).
		Then(clientv3.OpDelete(key)).Commit()
	return err
}
