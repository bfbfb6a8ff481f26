package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/anycast"
	"github.com/meridian-edge/meridian/certs"
	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/dnsserver"
	"github.com/meridian-edge/meridian/fleet"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/proxy"
	"github.com/meridian-edge/meridian/state"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Options are a node's injected edges.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Admin, when set, is served on listen.admin. The admin package
	// provides it; the node only binds and stops it.
	Admin func(*Node) http.Handler
	// ConfigPath is the file Reload reads again.
	ConfigPath string
	// HealthTLS adds trusted roots for https probes (tests).
	HealthTLS *health.Options
}

// Node is one running edge node.
type Node struct {
	log  *slog.Logger
	now  func() time.Time
	opts Options
	reg  *prometheus.Registry
	m    *metrics

	started time.Time

	// mu serialises every change: reloads, operator changes, rebuilds.
	mu      sync.Mutex
	cfg     *config.Config
	gen     uint64 // config generation, rises on every successful reload
	geo     *geo.DB
	geoPath string
	health  *health.Checker
	store   state.Store
	st      state.Snapshot

	etcd      *clientv3.Client // shared by state, fleet and certificates; nil with the file backend
	certFleet *certs.Fleet     // certificates shared through etcd; nil without a fleet
	etcdStore *state.Etcd      // the store when the backend is etcd
	members   *fleet.Membership
	cfgHash   string           // configHash of cfg
	rttPrev   map[string][]int // service → previous RTT ranking

	view atomic.Pointer[View]

	shifts *shifts // running shifts' windows (guarded by mu) and metrics
	fo     *failovers

	dns     *dnsserver.Server
	proxy   *proxy.Proxy
	certs   *certs.Manager
	access  accessLog
	servers []*http.Server
	bound   map[string]net.Addr // listener kind/address → bound address

	ready    atomic.Bool
	draining atomic.Bool
	drained  atomic.Bool                     // an operator drained this node (anycast.go)
	synced   atomic.Bool                     // the fleet state was read from etcd once (anycast.go)
	anycast  atomic.Pointer[anycast.Anycast] // nil without a bgp section
	kick     chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New prepares a node for cfg. Nothing is bound or started until Start.
func New(cfg *config.Config, opts Options) (*Node, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	n := &Node{
		log:     opts.Logger.With("component", "node"),
		now:     opts.Now,
		opts:    opts,
		reg:     prometheus.NewRegistry(),
		cfg:     cfg,
		gen:     1,
		rttPrev: map[string][]int{},
		kick:    make(chan struct{}, 1),
		bound:   map[string]net.Addr{},
		cfgHash: configHash(cfg),
	}
	n.m = newMetrics(n)
	n.shifts = newShifts(n)
	n.fo = newFailovers(n)
	return n, nil
}

// Registry is the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Start opens the state and GeoIP databases, starts health checks, builds
// the first snapshot and binds every listener. On error, whatever was
// started is stopped and every listener bound so far is closed.
func (n *Node) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.closeListeners()
			n.stop()
		}
	}()
	ctx, n.cancel = context.WithCancel(ctx)
	n.started = n.now()
	cfg := n.cfg
	if err := checkServes(cfg); err != nil {
		return err
	}

	if err := n.openState(cfg); err != nil {
		return err
	}
	db, err := geo.Open(cfg.GeoIP.Database)
	if err != nil {
		return fmt.Errorf("opening geoip database: %w", err)
	}
	n.geo, n.geoPath = db, cfg.GeoIP.Database

	hopts := health.Options{}
	if n.opts.HealthTLS != nil {
		hopts = *n.opts.HealthTLS
	}
	hopts.Logger = n.opts.Logger
	hopts.Now = n.now
	hopts.Registerer = n.reg
	hopts.OnChange = n.trigger
	hc, err := health.New(cfg.Regions, hopts)
	if err != nil {
		return fmt.Errorf("preparing health checks: %w", err)
	}
	n.mu.Lock() // Ready may be asked from another goroutine meanwhile
	n.health = hc
	n.mu.Unlock()

	n.dns = dnsserver.New(dnsserver.Options{Logger: n.opts.Logger, Registerer: n.reg, FailOpen: n.m.failOpen})
	n.proxy = proxy.New(proxy.Options{Logger: n.opts.Logger, Registerer: n.reg, FailOpen: n.m.failOpen, Reporter: n.health, Now: n.now,
		Limits: connLimits(cfg.Listen.Connections)})
	out, err := openAccessLog(cfg.AccessLog.Path)
	if err != nil {
		return err
	}
	n.access.set(n, out)

	n.mu.Lock()
	err = n.rebuildLocked()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if err := n.health.Start(ctx); err != nil {
		return fmt.Errorf("starting health checks: %w", err)
	}
	if err := n.startFleet(ctx, cfg); err != nil {
		return err
	}
	if err := n.listen(ctx, cfg); err != nil {
		return err
	}
	if err := n.startAnycast(ctx); err != nil {
		return err
	}
	n.fo.replicas.Start(ctx)
	n.wg.Add(4)
	go n.loop(ctx)
	go n.runShifts(ctx)
	go n.followState(ctx)
	go n.runFailovers(ctx)
	n.log.Info("node started", "name", cfg.Node.Name, "regions", len(cfg.Regions), "services", len(cfg.Services))
	return nil
}

func (n *Node) openState(cfg *config.Config) error {
	var st state.Store
	switch cfg.State.Backend {
	case "", "file":
		fst, err := state.OpenFile(cfg.State.Path, state.FileOptions{Now: n.now, Logger: n.opts.Logger})
		if err != nil {
			return fmt.Errorf("opening state: %w", err)
		}
		st = fst
	case "etcd":
		est, err := n.openEtcdState(cfg)
		if est != nil {
			n.store = est
		}
		if err != nil {
			return fmt.Errorf("opening state: %w", err)
		}
		st = est
	default:
		return fmt.Errorf("state backend %q is not available in this build", cfg.State.Backend)
	}
	n.store = st
	snap, err := st.Load()
	if err != nil {
		return fmt.Errorf("loading state: %w", err)
	}
	_, drained := snap.Drained[cfg.Node.Name]
	n.drained.Store(drained) // anycast.go
	if n.etcdStore != nil {
		// The fleet's state is shared: a node never rewrites it to fit
		// its own config, it only leaves out what it does not know.
		for _, w := range state.Prune(&snap, serviceRegions(cfg), regionNames(cfg)) {
			n.log.Warn("ignoring part of the fleet state", "reason", w)
		}
		n.st = snap
		return nil
	}
	if warnings := state.Prune(&snap, serviceRegions(cfg), regionNames(cfg)); len(warnings) > 0 {
		for _, w := range warnings {
			n.log.Warn("dropping persisted state", "reason", w)
		}
		// Save the pruned state, so that what was dropped stays dropped.
		if snap, err = st.Update(func(s *state.Snapshot) error {
			state.Prune(s, serviceRegions(cfg), regionNames(cfg))
			return nil
		}); err != nil {
			return fmt.Errorf("saving pruned state: %w", err)
		}
	}
	n.st = snap
	return nil
}

// loop rebuilds the snapshot when health changes, and once a second so
// that measured RTTs reach proxy latency rankings.
func (n *Node) loop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		case <-t.C:
			if v := n.view.Load(); v != nil && v.Health == n.health.Snapshot() && !n.fleetMoved(v) {
				continue
			}
		}
		n.mu.Lock()
		if err := n.rebuildLocked(); err != nil {
			n.log.Error("rebuilding snapshot", "err", err)
		}
		n.mu.Unlock()
		n.updateReady()
	}
}

// trigger asks the loop for a rebuild without blocking the caller.
func (n *Node) trigger() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Node) updateReady() {
	n.mu.Lock()
	hc := n.health
	n.mu.Unlock()
	n.ready.Store(!n.draining.Load() && hc != nil && hc.Ready() && n.listening() &&
		!n.drained.Load() && n.anycastReady())
}

func (n *Node) listening() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.bound) > 0 || (len(n.cfg.Listen.DNS) == 0 && len(n.cfg.Listen.HTTP) == 0)
}

// Ready reports whether every listener is bound, the first health round
// is done, the node is neither shutting down nor drained, and, with BGP,
// its prefixes are announced.
func (n *Node) Ready() bool {
	n.updateReady()
	return n.ready.Load()
}

// Draining reports whether shutdown has begun.
func (n *Node) Draining() bool { return n.draining.Load() }

// Shutdown drains: readiness turns false at once, the node serves on for
// node.drain, then stops accepting and waits for in-flight requests up to
// node.shutdown_timeout (or ctx).
func (n *Node) Shutdown(ctx context.Context) error {
	n.withdrawForShutdown()
	n.draining.Store(true)
	n.ready.Store(false)
	n.mu.Lock()
	drain, grace := n.cfg.Node.Drain.D(), n.cfg.Node.ShutdownTimeout.D()
	n.mu.Unlock()
	n.log.Info("draining", "drain", drain, "shutdown_timeout", grace)
	select {
	case <-time.After(drain):
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var errs []error
	if n.proxy != nil {
		if err := n.proxy.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the proxy: %w", err))
		}
	}
	for _, s := range n.servers {
		if err := s.Shutdown(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	if n.dns != nil {
		if err := n.dns.Shutdown(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	n.stop()
	n.log.Info("stopped")
	return errors.Join(errs...)
}

// Close stops everything at once, without draining.
func (n *Node) Close() error {
	n.draining.Store(true)
	n.closeListeners()
	n.stop()
	return nil
}

// closeListeners closes every HTTP server and the DNS listeners at once, so
// that their serve goroutines end; safe after a partial start.
func (n *Node) closeListeners() {
	if n.proxy != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a done context closes every connection at once
		_ = n.proxy.Shutdown(ctx)
	}
	for _, s := range n.servers {
		_ = s.Close()
	}
	if n.dns != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.dns.Shutdown(ctx)
		cancel()
	}
}

// stop ends background work; safe after a partial start and twice.
func (n *Node) stop() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	n.stopAnycast()
	n.access.close(n)
	if n.members != nil {
		n.members.Stop()
	}
	n.fo.replicas.Stop()
	if n.certs != nil {
		n.certs.Stop()
	}
	if n.certFleet != nil {
		n.certFleet.Stop()
		n.certFleet = nil
	}
	if n.health != nil {
		n.health.Stop()
	}
	if n.store != nil {
		_ = n.store.Close()
		n.store = nil
	}
	if n.etcd != nil {
		_ = n.etcd.Close()
	}
	if n.geo != nil {
		_ = n.geo.Close()
		n.geo = nil
	}
}
