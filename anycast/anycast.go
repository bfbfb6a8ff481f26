package anycast

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
)

// Options are the edges a node gives its anycast controller.
type Options struct {
	Logger     *slog.Logger
	Now        func() time.Time
	Registerer prometheus.Registerer // nil: no metrics
	// Ready reports whether the node could serve: listeners bound, config
	// and state loaded. Nothing is announced while it is false.
	Ready func() bool
	// Targets lists the listeners the self-check asks.
	Targets func() Targets
	// OnChange is called after every announcement and withdrawal.
	OnChange func()
}

// announcer is what the controller asks of a BGP speaker.
type announcer interface {
	Announce() error
	Withdraw() error
}

var _ announcer = (*Speaker)(nil)

// Anycast announces the node's prefixes while it is ready, not drained,
// not shutting down and its self-check passes, and withdraws them at once
// when any of these stops holding.
type Anycast struct {
	log  *slog.Logger
	now  func() time.Time
	opts Options
	cfg  config.SelfCheck
	sp   *Speaker
	ann  announcer

	// mu serialises decisions, so that a withdrawal asked for by drain or
	// shutdown cannot be undone by a self-check round running meanwhile.
	mu        sync.Mutex
	d         *decider
	drained   bool
	stopping  bool
	announced bool
	reason    string // why the prefixes are withdrawn; "" while announced
	holdUntil time.Time
	lastCheck time.Time
	lastErr   string
	changed   time.Time // last announcement or withdrawal

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New prepares the speaker and the controller for cfg.
func New(cfg *config.BGP, opts Options) (*Anycast, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.Targets == nil {
		opts.Targets = func() Targets { return Targets{} }
	}
	sp, err := NewSpeaker(cfg, opts.Logger, opts.Now)
	if err != nil {
		return nil, err
	}
	a := &Anycast{
		log: opts.Logger.With("component", "anycast"), now: opts.Now, opts: opts,
		cfg: cfg.SelfCheck, sp: sp, ann: sp,
		d:      newDecider(cfg.SelfCheck.Rise, cfg.SelfCheck.Fall, cfg.SelfCheck.HoldDown.D()),
		reason: "starting",
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(&collector{a: a}); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Start brings the BGP sessions up and starts the self-check loop; the
// first round runs at once.
func (a *Anycast) Start(ctx context.Context) error {
	if err := a.sp.Start(ctx); err != nil {
		return err
	}
	ctx, a.cancel = context.WithCancel(ctx)
	a.wg.Add(1)
	go a.loop(ctx)
	return nil
}

func (a *Anycast) loop(ctx context.Context) {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.Interval.D())
	defer t.Stop()
	for {
		a.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round runs one self-check and acts on the result.
func (a *Anycast) round(ctx context.Context) {
	err := SelfCheck(ctx, a.opts.Targets(), a.cfg.Timeout.D())
	if ctx.Err() != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.lastCheck = now
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != a.lastErr {
		if err != nil {
			a.log.Warn("self-check failed", "err", err)
		} else {
			a.log.Info("self-check passes again")
		}
		a.lastErr = msg
	}
	a.d.observe(err == nil, now)
	a.decideLocked()
}

// decideLocked announces or withdraws according to the current inputs.
func (a *Anycast) decideLocked() {
	now := a.now()
	want, why := true, ""
	fit, fitWhy, until := a.d.fit(now)
	switch {
	case a.stopping:
		want, why = false, "shutting down"
	case a.drained:
		want, why = false, "drained"
	case !a.opts.Ready():
		want, why = false, "node not ready"
	case !fit:
		want, why = false, fitWhy
	}
	a.holdUntil = until
	if want == a.announced {
		if !want {
			a.reason = why
		}
		return
	}
	if want {
		if err := a.ann.Announce(); err != nil {
			a.log.Error("announcing prefixes", "err", err)
			return
		}
		a.log.Info("prefixes announced", "prefixes", a.sp.Prefixes())
	} else {
		if err := a.ann.Withdraw(); err != nil {
			a.log.Error("withdrawing prefixes", "err", err)
			return
		}
		a.log.Warn("prefixes withdrawn", "reason", why, "prefixes", a.sp.Prefixes())
	}
	a.announced, a.reason, a.changed = want, why, now
	if a.opts.OnChange != nil {
		go a.opts.OnChange()
	}
}

// SetDrained withdraws the prefixes at once (true), or lets them be
// announced again as soon as everything else allows (false).
func (a *Anycast) SetDrained(drained bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.drained = drained
	a.decideLocked()
}

// Shutdown withdraws the prefixes at once and for good; the sessions stay
// up, so that the withdrawal reaches the peers and traffic already routed
// here can finish, until Stop.
func (a *Anycast) Shutdown() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopping = true
	a.decideLocked()
}

// Kick re-evaluates at once, for a change of readiness.
func (a *Anycast) Kick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.decideLocked()
}

// Stop ends the self-check loop and closes every session; safe after a
// partial start and twice.
func (a *Anycast) Stop() {
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	a.sp.Stop()
	a.mu.Lock()
	a.announced = false
	a.reason = "stopped"
	a.mu.Unlock()
}

// Announced reports whether the prefixes are announced.
func (a *Anycast) Announced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.announced
}

// Status is the anycast part of /v1/status.
type Status struct {
	ASN       int64          `json:"asn"`
	RouterID  string         `json:"router_id"`
	Announced bool           `json:"announced"`
	Reason    string         `json:"withdrawn_reason,omitempty"` // why not, while withdrawn
	HoldDown  time.Time      `json:"hold_down_until,omitzero"`
	Since     time.Time      `json:"since,omitzero"` // last announcement or withdrawal
	Prefixes  []netip.Prefix `json:"prefixes"`       // the prefixes announced while announced
	// AnnouncedPrefixes are the prefixes advertised now: Prefixes while
	// announced, none while withdrawn.
	AnnouncedPrefixes []netip.Prefix  `json:"announced_prefixes"`
	SelfCheck         SelfCheckStatus `json:"self_check"`
	Peers             []PeerStatus    `json:"peers"`
}

// SelfCheckStatus is the last self-check round.
type SelfCheckStatus struct {
	LastCheck time.Time `json:"last_check,omitzero"`
	Passing   bool      `json:"passing"`
	Passes    int       `json:"consecutive_passes"`
	Fails     int       `json:"consecutive_failures"`
	LastError string    `json:"last_error,omitempty"`
}

// Status describes the sessions, the prefixes and the self-check.
func (a *Anycast) Status() Status {
	a.mu.Lock()
	st := Status{
		ASN: a.sp.cfg.ASN, RouterID: a.sp.cfg.RouterID.String(),
		Announced: a.announced, Reason: a.reason, HoldDown: a.holdUntil, Since: a.changed,
		Prefixes:          a.sp.Prefixes(),
		AnnouncedPrefixes: []netip.Prefix{},
		SelfCheck: SelfCheckStatus{
			LastCheck: a.lastCheck, Passing: a.lastErr == "" && !a.lastCheck.IsZero(),
			Passes: a.d.passes, Fails: a.d.fails, LastError: a.lastErr,
		},
	}
	if a.announced {
		st.Reason = ""
		st.AnnouncedPrefixes = st.Prefixes
	}
	a.mu.Unlock()
	st.Peers = a.sp.Peers()
	return st
}
