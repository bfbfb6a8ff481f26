package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
)

// Options are a Checker's dependencies. The zero value works.
type Options struct {
	Logger *slog.Logger // nil = slog.Default()
	// Now stamps probe results and drives ejection periods; nil =
	// time.Now. Probe scheduling always uses the real clock.
	Now func() time.Time
	// Registerer receives the checker's metrics; nil = no metrics.
	Registerer prometheus.Registerer
	// OnChange is called when an endpoint's or a region's Up or Ejected
	// state changes. It runs on a goroutine of the checker, never under a
	// lock of the checker; calls do not overlap, and changes that happen
	// while it runs are coalesced into one further call.
	OnChange func()
	// TLSConfig is the base TLS configuration of https probes (for
	// instance RootCAs for a private CA); nil = the system roots. Its
	// ServerName is replaced by health.host when that is set.
	TLSConfig *tls.Config
}

// Checker probes endpoints and keeps the current Snapshot.
type Checker struct {
	log      *slog.Logger
	now      func() time.Time
	onChange func()
	metrics  *metrics // nil without a registry
	dialer   *net.Dialer

	snap   atomic.Pointer[Snapshot]
	table  atomic.Pointer[[][]*endpoint] // region, endpoint → endpoint, for Report
	ready  atomic.Bool
	notify chan struct{} // cap 1: a pending OnChange call

	mu      sync.Mutex
	regions []*region
	clients clients
	pending int // endpoints with probes and no result yet
	runCtx  context.Context
	cancel  context.CancelFunc // nil until Start
	stopped bool
	wg      sync.WaitGroup
}

// New returns a Checker for regions (indexed as given) that probes
// nothing until Start. It fails on regions it cannot check (an unknown
// health type, an endpoint URL that does not parse) or when the metrics
// cannot be registered.
func New(regions []config.Region, opts Options) (*Checker, error) {
	specs, err := buildSpecs(regions)
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	c := &Checker{
		log:      opts.Logger,
		now:      opts.Now,
		onChange: opts.OnChange,
		dialer:   &net.Dialer{},
		notify:   make(chan struct{}, 1),
		clients:  clients{base: opts.TLSConfig},
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "health")
	if c.now == nil {
		c.now = time.Now
	}
	if opts.Registerer != nil {
		m, err := newMetrics(opts.Registerer, c)
		if err != nil {
			return nil, fmt.Errorf("health: registering metrics: %w", err)
		}
		c.metrics = m
	}
	c.mu.Lock()
	c.reconcileLocked(specs)
	c.mu.Unlock()
	return c, nil
}

// Start starts probing. The probes stop when ctx ends or Stop is called.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return errors.New("health: start: checker stopped")
	case c.cancel != nil:
		return errors.New("health: start: already started")
	}
	c.runCtx, c.cancel = context.WithCancel(ctx)
	for _, r := range c.regions {
		for _, ep := range r.endpoints {
			c.startLocked(ep)
		}
	}
	c.wg.Add(1)
	go c.notifier(c.runCtx)
	return nil
}

// startLocked starts ep's goroutine if the checker runs: its probe loop,
// or for an endpoint without probes, only while it is ejected, the wait
// for the ejection to end. Checker.mu held.
func (c *Checker) startLocked(ep *endpoint) {
	if c.cancel == nil || c.stopped || ep.cancel != nil || ep.removed {
		return
	}
	if ep.prober == nil && !ep.ej.ejected {
		return
	}
	ctx, cancel := context.WithCancel(c.runCtx)
	ep.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if ep.prober == nil {
			c.runExpiry(ctx, ep)
		} else {
			c.runProbes(ctx, ep)
		}
	}()
}

// Stop stops every probe and waits for the checker's goroutines. It is
// safe before Start, after a failed Start and more than once.
func (c *Checker) Stop() {
	c.mu.Lock()
	c.stopped = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	c.mu.Lock()
	c.clients.closeIdle()
	c.mu.Unlock()
}

// Snapshot returns the current state. It never blocks; the result must not
// be modified.
func (c *Checker) Snapshot() *Snapshot { return c.snap.Load() }

// Ready reports whether every endpoint has had its first probe result.
// Once true it stays true: endpoints added by Update later do not make a
// running node unready.
func (c *Checker) Ready() bool { return c.ready.Load() }

// checkReadyLocked latches ready once no endpoint awaits its first result.
func (c *Checker) checkReadyLocked() {
	if c.pending <= 0 {
		c.ready.Store(true)
	}
}

// changed schedules an OnChange call.
func (c *Checker) changed() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// notifier calls OnChange for scheduled changes until ctx ends.
func (c *Checker) notifier(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.notify:
			if c.onChange != nil {
				c.onChange()
			}
		}
	}
}
