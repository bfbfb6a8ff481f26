package health

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

func TestVerdict(t *testing.T) {
	t.Parallel()
	// Each step is a probe result and the state expected after it.
	type step struct {
		pass, up, changed bool
	}
	P := func(up, changed bool) step { return step{true, up, changed} }
	F := func(up, changed bool) step { return step{false, up, changed} }
	tests := []struct {
		name       string
		rise, fall int
		steps      []step
	}{
		{"first pass is up at once", 3, 3, []step{P(true, true), P(true, false)}},
		{"first failure stays down", 2, 2, []step{F(false, false), F(false, false)}},
		{"rise counts consecutive passes", 3, 2, []step{
			F(false, false), P(false, false), P(false, false), F(false, false),
			P(false, false), P(false, false), P(true, true)}},
		{"fall counts consecutive failures", 2, 3, []step{
			P(true, true), F(true, false), F(true, false), P(true, false),
			F(true, false), F(true, false), F(false, true), F(false, false)}},
		{"rise and fall of one", 1, 1, []step{P(true, true), F(false, true), P(true, true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v verdict
			if v.up {
				t.Fatal("a new verdict is up")
			}
			for i, s := range tt.steps {
				changed := v.observe(s.pass, tt.rise, tt.fall)
				if v.up != s.up || changed != s.changed {
					t.Fatalf("step %d (pass=%v): up=%v changed=%v, want up=%v changed=%v",
						i, s.pass, v.up, changed, s.up, s.changed)
				}
			}
		})
	}
}

func TestEWMA(t *testing.T) {
	t.Parallel()
	avg := ewma(0, 10*time.Millisecond)
	if avg != 10*time.Millisecond {
		t.Fatalf("first sample: got %v, want 10ms", avg)
	}
	avg = ewma(avg, 20*time.Millisecond)
	if want := 13 * time.Millisecond; avg != want {
		t.Fatalf("second sample: got %v, want %v", avg, want)
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	for range 1000 {
		if d := jittered(interval); d < 900*time.Millisecond || d > 1100*time.Millisecond {
			t.Fatalf("jittered(1s) = %v, want within ±10%%", d)
		}
		if d := firstDelay(interval); d < 0 || d >= interval {
			t.Fatalf("firstDelay(1s) = %v, want in [0, 1s)", d)
		}
	}
}

func TestRegionRTT(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	up := func(rtt time.Duration) EndpointState { return EndpointState{Up: true, RTT: rtt} }
	tests := []struct {
		name string
		eps  []EndpointState
		n    int
		want time.Duration
	}{
		{"no endpoints", nil, 1, 0},
		{"none measured", []EndpointState{up(0), up(0)}, 1, 0},
		{"fastest one", []EndpointState{up(ms(30)), up(ms(10)), up(ms(20))}, 1, ms(10)},
		{"mean of the two fastest", []EndpointState{up(ms(30)), up(ms(10)), up(ms(20))}, 2, ms(15)},
		{"fewer healthy than min_healthy", []EndpointState{up(ms(30)), {RTT: ms(1)}}, 2, ms(30)},
		{"down and ejected ignored", []EndpointState{
			{Up: false, RTT: ms(1)}, {Up: true, Ejected: true, RTT: ms(2)}, up(ms(40))}, 1, ms(40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := regionRTT(tt.eps, tt.n); got != tt.want {
				t.Errorf("regionRTT = %v, want %v", got, tt.want)
			}
		})
	}
}

// stepChecker is a checker that is not started: tests feed it results.
func stepChecker(t *testing.T, regions []config.Region, opts Options) *Checker {
	t.Helper()
	if opts.Now == nil {
		opts.Now = newFakeClock().Now
	}
	return newChecker(t, regions, opts)
}

// pendingChange reports and clears a scheduled OnChange call.
func pendingChange(c *Checker) bool {
	select {
	case <-c.notify:
		return true
	default:
		return false
	}
}

func TestRegionUpFollowsMinHealthy(t *testing.T) {
	t.Parallel()
	h := fastHealth("http")
	h.Rise, h.Fall = 1, 1
	c := stepChecker(t, []config.Region{
		regionOf("r", h, 2, "http://10.0.0.1", "http://10.0.0.2", "http://10.0.0.3"),
	}, Options{})
	eps := c.regions[0].endpoints
	pass, fail := okResult(time.Millisecond), statusResult(503)
	steps := []struct {
		name     string
		k        int
		res      result
		wantUp   bool
		wantNote bool // OnChange scheduled
	}{
		{"one up", 0, pass, false, true},
		{"two up", 1, pass, true, true},
		{"third down from the start", 2, fail, true, false},
		{"rtt only", 0, pass, true, false},
		{"one of two down", 1, fail, false, true},
		{"third comes up", 2, pass, true, true},
	}
	if c.Snapshot().Regions[0].Up {
		t.Fatal("region up before any probe")
	}
	pendingChange(c)
	for _, s := range steps {
		c.apply(eps[s.k], s.res)
		if got := c.Snapshot().Regions[0].Up; got != s.wantUp {
			t.Fatalf("%s: region up = %v, want %v", s.name, got, s.wantUp)
		}
		if got := pendingChange(c); got != s.wantNote {
			t.Fatalf("%s: OnChange scheduled = %v, want %v", s.name, got, s.wantNote)
		}
	}
}

func TestSnapshotIsReplacedNotModified(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := stepChecker(t, []config.Region{
		regionOf("a", fastHealth("http"), 1, "http://10.0.0.1"),
		regionOf("b", fastHealth("http"), 1, "http://10.0.0.2"),
	}, Options{Now: clock.Now})
	before := c.Snapshot()
	c.apply(c.regions[0].endpoints[0], okResult(7*time.Millisecond))
	after := c.Snapshot()
	if before == after {
		t.Fatal("snapshot pointer unchanged after a result")
	}
	if e := before.Regions[0].Endpoints[0]; e.Up || e.LastResult != "" || !e.LastCheck.IsZero() {
		t.Errorf("old snapshot modified: %+v", e)
	}
	e := after.Regions[0].Endpoints[0]
	if !e.Up || e.LastResult != "ok" || !e.LastCheck.Equal(clock.Now()) || e.RTT != 7*time.Millisecond {
		t.Errorf("new endpoint state = %+v, want up, ok, checked now, rtt 7ms", e)
	}
	if r := after.Regions[0]; !r.Up || r.RTT != 7*time.Millisecond {
		t.Errorf("region = up %v rtt %v, want up, 7ms", r.Up, r.RTT)
	}
	if &before.Regions[1].Endpoints[0] != &after.Regions[1].Endpoints[0] {
		t.Error("unchanged region's endpoints were copied")
	}
}

func TestEndpointUpAndRegionUpBounds(t *testing.T) {
	t.Parallel()
	var nilSnap *Snapshot
	if !nilSnap.EndpointUp(0, 0) || !nilSnap.RegionUp(3) {
		t.Error("nil snapshot must count everything up")
	}
	s := &Snapshot{Regions: []RegionState{{Up: true, Endpoints: []EndpointState{
		{Up: true}, {Up: true, Ejected: true}, {Up: false},
	}}}}
	tests := []struct {
		name   string
		r, k   int
		want   bool
		region bool
	}{
		{"up", 0, 0, true, false},
		{"ejected", 0, 1, false, false},
		{"down", 0, 2, false, false},
		{"endpoint out of range", 0, 3, false, false},
		{"negative region", -1, 0, false, false},
		{"region up", 0, 0, true, true},
		{"region out of range", 1, 0, false, true},
	}
	for _, tt := range tests {
		got := s.EndpointUp(tt.r, tt.k)
		if tt.region {
			got = s.RegionUp(tt.r)
		}
		if got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	srv := newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	regions := []config.Region{regionOf("r", h, 1, srv.URL)}

	t.Run("stop before start", func(t *testing.T) {
		c := newChecker(t, regions, Options{})
		c.Stop()
		c.Stop()
		if err := c.Start(context.Background()); err == nil || err.Error() != "health: start: checker stopped" {
			t.Errorf("Start after Stop = %v, want checker stopped", err)
		}
	})
	t.Run("start twice", func(t *testing.T) {
		c := startChecker(t, regions, Options{})
		if err := c.Start(context.Background()); err == nil || err.Error() != "health: start: already started" {
			t.Errorf("second Start = %v, want already started", err)
		}
		c.Stop()
		c.Stop()
	})
	t.Run("context ends the probes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		c := newChecker(t, regions, Options{})
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "first probe", c.Ready)
		cancel()
		c.Stop()
		n := srv.served.Load()
		c.Stop()
		time.Sleep(5 * h.Interval.D()) // an observation window: five intervals with no probes
		// One probe abandoned by the client may still reach the server.
		if got := srv.served.Load(); got > n+1 {
			t.Errorf("probes after Stop: %d more", got-n)
		}
	})
}

func TestFirstResultAndReady(t *testing.T) {
	t.Parallel()
	up := newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	h.Rise, h.Fall = 5, 5
	h.Interval = config.Duration(200 * time.Millisecond)
	regions := []config.Region{
		regionOf("good", h, 1, up.URL),
		regionOf("bad", h, 1, "http://"+closedAddr(t)),
		regionOf("none", fastHealth("none"), 1, "http://10.0.0.9"),
	}
	c := newChecker(t, regions, Options{})
	s := c.Snapshot()
	if c.Ready() || s.Regions[0].Up || s.EndpointUp(0, 0) || s.Regions[0].Endpoints[0].LastResult != "" {
		t.Fatalf("before Start: ready %v, region %+v; want not ready, down, no result", c.Ready(), s.Regions[0])
	}
	if !s.Regions[2].Up || !s.EndpointUp(2, 0) {
		t.Errorf("health type none: region %+v, want up at once", s.Regions[2])
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "ready", c.Ready)
	s = c.Snapshot()
	good, bad := s.Regions[0].Endpoints[0], s.Regions[1].Endpoints[0]
	if !good.Up || good.LastResult != "ok" || !s.Regions[0].Up {
		t.Errorf("good endpoint after first probe (rise 5) = %+v, want up at once", good)
	}
	if bad.Up || bad.LastResult != "connection refused" || s.Regions[1].Up {
		t.Errorf("bad endpoint after first probe = %+v, want down, connection refused", bad)
	}
}

func TestProbesFollowServer(t *testing.T) {
	t.Parallel()
	srv := newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	h.Rise, h.Fall = 2, 3
	var changes atomic.Int64
	c := startChecker(t, []config.Region{regionOf("r", h, 1, srv.URL)}, Options{OnChange: func() { changes.Add(1) }})
	waitFor(t, 5*time.Second, "endpoint up", func() bool { return c.Snapshot().EndpointUp(0, 0) })
	waitFor(t, 5*time.Second, "OnChange for up", func() bool { return changes.Load() >= 1 })
	waitFor(t, 5*time.Second, "an RTT", func() bool { return c.Snapshot().Regions[0].RTT > 0 })

	flipped := srv.served.Load()
	srv.status.Store(http.StatusServiceUnavailable)
	waitFor(t, 5*time.Second, "endpoint down", func() bool { return !c.Snapshot().EndpointUp(0, 0) })
	// Probes are applied after the server answered: going down took at
	// least fall failures, minus one probe that may have been in flight.
	if n := srv.served.Load() - flipped; n < 3 {
		t.Errorf("down after %d probes of 503, want at least fall=3", n)
	}
	s := c.Snapshot()
	if e := s.Regions[0].Endpoints[0]; e.LastResult != "status 503" || s.Regions[0].Up {
		t.Errorf("after 503s: endpoint %+v, region up %v; want status 503, region down", e, s.Regions[0].Up)
	}
	waitFor(t, 5*time.Second, "OnChange for down", func() bool { return changes.Load() >= 2 })

	flipped = srv.served.Load()
	srv.status.Store(http.StatusOK)
	waitFor(t, 5*time.Second, "endpoint up again", func() bool { return c.Snapshot().EndpointUp(0, 0) })
	if n := srv.served.Load() - flipped; n < 2 {
		t.Errorf("up after %d probes of 200, want at least rise=2", n)
	}
}

func TestServerClosedGoesDown(t *testing.T) {
	t.Parallel()
	srv := newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	h.Fall = 1
	c := startChecker(t, []config.Region{regionOf("r", h, 1, srv.URL)}, Options{})
	waitFor(t, 5*time.Second, "endpoint up", func() bool { return c.Snapshot().EndpointUp(0, 0) })
	srv.Close()
	waitFor(t, 5*time.Second, "endpoint down", func() bool { return !c.Snapshot().EndpointUp(0, 0) })
	waitFor(t, 5*time.Second, "connection refused", func() bool {
		return c.Snapshot().Regions[0].Endpoints[0].LastResult == "connection refused"
	})
}

func TestHangingServerTimesOut(t *testing.T) {
	t.Parallel()
	hang := newHangListener(t)
	c := startChecker(t, []config.Region{regionOf("r", fastHealth("http"), 1, hang.URL())}, Options{})
	waitFor(t, 5*time.Second, "a timeout", func() bool {
		return c.Snapshot().Regions[0].Endpoints[0].LastResult == "timeout"
	})
	if c.Snapshot().EndpointUp(0, 0) {
		t.Error("hanging endpoint is up")
	}
}
