package certs

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// keptLease is an etcd lease kept alive from its grant until release, or
// until etcd stops renewing it (unreachable for longer than its TTL).
type keptLease struct {
	id   clientv3.LeaseID
	stop context.CancelFunc
	done chan struct{} // closed when the keep-alive has ended
}

// grantLease grants a lease of ttl seconds and keeps it alive. onLost, when
// not nil, runs if the keep-alive ends before release.
func grantLease(ctx context.Context, cli *clientv3.Client, ttl int64, onLost func()) (*keptLease, error) {
	octx, cancel := opContext(ctx)
	defer cancel()
	g, err := cli.Grant(octx, ttl)
	if err != nil {
		return nil, fmt.Errorf("granting a lease: %w", err)
	}
	// The keep-alive lives until release, not until ctx ends.
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ch, err := cli.KeepAlive(kctx, g.ID)
	if err != nil {
		stop()
		revokeLease(cli, g.ID)
		return nil, fmt.Errorf("keeping a lease alive: %w", err)
	}
	l := &keptLease{id: g.ID, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for resp := range ch {
			_ = resp // each is a renewal; the channel closes when they end
		}
		if kctx.Err() == nil && onLost != nil {
			onLost()
		}
	}()
	return l, nil
}

// lost reports whether the keep-alive has ended.
func (l *keptLease) lost() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// release stops the keep-alive and revokes the lease, deleting the keys
// bound to it. A lease already expired counts as released.
func (l *keptLease) release(ctx context.Context, cli *clientv3.Client) error {
	l.stop()
	<-l.done
	ctx, cancel := opContext(ctx)
	defer cancel()
	if _, err := cli.Revoke(ctx, l.id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return err
	}
	return nil
}

// revokeLease ends a lease that holds nothing; an error only lets it
// expire.
func revokeLease(cli *clientv3.Client, id clientv3.LeaseID) {
	ctx, cancel := opContext(context.Background())
	defer cancel()
	_, _ = cli.Revoke(ctx, id)
}
