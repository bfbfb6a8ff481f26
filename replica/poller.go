package replica

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
)

// One read of a lag endpoint may take as long as the interval, within
// these bounds.
const (
	minReadTimeout = time.Second
	maxReadTimeout = 2 * time.Second
)

// Lag is what is known of one region's replica lag.
type Lag struct {
	Seconds float64   `json:"lag_seconds"`
	Known   bool      `json:"known"`
	Checked time.Time `json:"checked,omitzero"` // when the last read ended
	Error   string    `json:"error,omitempty"`  // why the last read failed
}

// Options are a Poller's injected edges.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Client reads the lag endpoints; nil is a client of its own.
	Client *http.Client
	// Registerer takes meridian_region_replica_lag_seconds; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

// Poller polls the lag endpoint of every region with replication.
type Poller struct {
	log    *slog.Logger
	now    func() time.Time
	client *http.Client

	mu      sync.Mutex
	regions []config.Region
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ctx     context.Context

	lags atomic.Pointer[map[string]*atomic.Pointer[Lag]]
}

// New prepares a poller for regions; nothing runs until Start.
func New(regions []config.Region, opts Options) *Poller {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	p := &Poller{log: opts.Logger.With("component", "replica"), now: opts.Now, client: opts.Client, regions: regions}
	p.lags.Store(newLags(regions))
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(&lagCollector{p: p})
	}
	return p
}

func newLags(regions []config.Region) *map[string]*atomic.Pointer[Lag] {
	m := map[string]*atomic.Pointer[Lag]{}
	for _, r := range regions {
		if r.Replication != nil {
			m[r.Name] = new(atomic.Pointer[Lag])
			m[r.Name].Store(&Lag{})
		}
	}
	return &m
}

// Start polls every lag endpoint until Stop or ctx ends.
func (p *Poller) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
	p.startLocked()
}

func (p *Poller) startLocked() {
	ctx, cancel := context.WithCancel(p.ctx)
	p.cancel = cancel
	lags := *p.lags.Load()
	for _, r := range p.regions {
		if r.Replication == nil {
			continue
		}
		p.wg.Add(1)
		go p.poll(ctx, r.Name, *r.Replication, lags[r.Name])
	}
}

// Update polls the lag endpoints of a new region list. Regions whose
// replication settings did not change keep their last lag.
func (p *Poller) Update(regions []config.Region) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.lags.Load()
	next := newLags(regions)
	for name, slot := range *next {
		if prev := old[name]; prev != nil && sameReplication(p.regions, regions, name) {
			slot.Store(prev.Load())
		}
	}
	if p.cancel != nil {
		p.cancel()
		p.wg.Wait()
	}
	p.regions = regions
	p.lags.Store(next)
	if p.ctx != nil {
		p.startLocked()
	}
}

func sameReplication(a, b []config.Region, name string) bool {
	find := func(list []config.Region) *config.Replication {
		for i := range list {
			if list[i].Name == name {
				return list[i].Replication
			}
		}
		return nil
	}
	x, y := find(a), find(b)
	return x != nil && y != nil && *x == *y
}

// Stop ends polling; safe when never started and twice.
func (p *Poller) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	p.cancel = nil
	p.ctx = nil
}

// Lag returns the last lag read of region; a region without replication,
// or whose lag could not be read, has Known false.
func (p *Poller) Lag(region string) Lag {
	if slot := (*p.lags.Load())[region]; slot != nil {
		return *slot.Load()
	}
	return Lag{Error: "no replication.lag_url"}
}

// Has reports whether region has a lag endpoint.
func (p *Poller) Has(region string) bool {
	return (*p.lags.Load())[region] != nil
}

func (p *Poller) poll(ctx context.Context, region string, rc config.Replication, slot *atomic.Pointer[Lag]) {
	defer p.wg.Done()
	interval := rc.Interval.D()
	if interval <= 0 {
		interval = config.DefaultReplicationInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	wasKnown := true
	for {
		l := p.read(ctx, rc.LagURL, min(max(interval, minReadTimeout), maxReadTimeout))
		if ctx.Err() != nil {
			return
		}
		slot.Store(&l)
		if l.Known != wasKnown {
			if l.Known {
				p.log.Info("replica lag readable", "region", region, "lag_seconds", l.Seconds)
			} else {
				p.log.Warn("replica lag unknown", "region", region, "err", l.Error)
			}
			wasKnown = l.Known
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// read asks a lag endpoint once.
func (p *Poller) read(ctx context.Context, url string, timeout time.Duration) Lag {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	secs, err := fetchLag(ctx, p.client, url)
	l := Lag{Checked: p.now()}
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Seconds, l.Known = secs, true
	return l
}

func fetchLag(ctx context.Context, c *http.Client, url string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("reading lag: %w", err)
	}
	req.Header.Set("Accept", "application/json, text/plain")
	resp, err := c.Do(req) //nolint:gosec // G107: the URL is the operator's configured lag endpoint
	if err != nil {
		return 0, fmt.Errorf("reading lag: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLagBody+1))
	if err != nil {
		return 0, fmt.Errorf("reading lag: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("reading lag: status %d", resp.StatusCode)
	}
	if len(body) > maxLagBody {
		return 0, fmt.Errorf("reading lag: answer longer than %d bytes", maxLagBody)
	}
	v, err := ParseLag(body)
	if err != nil {
		return 0, fmt.Errorf("reading lag: %w", err)
	}
	return v, nil
}

var lagDesc = prometheus.NewDesc("meridian_region_replica_lag_seconds",
	"Replica lag of a region's data as its replication.lag_url reports it; absent while unknown.",
	[]string{"region"}, nil)

// lagCollector reads the known lags at scrape time.
type lagCollector struct{ p *Poller }

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for name, slot := range *c.p.lags.Load() {
		if l := slot.Load(); l.Known {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, l.Seconds, name)
		}
	}
}
