package health

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

func TestEjectionSchedule(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		name    string
		at      time.Duration
		eject   bool          // eject (else try to release)
		passed  bool          // for release: a check passed
		want    time.Duration // ejection length, for eject
		release bool          // for release: want released
	}
	steps := []step{
		{name: "first ejection", at: 0, eject: true, want: 30 * time.Second},
		{name: "passing check before the period", at: 29 * time.Second, passed: true},
		{name: "failing check after the period", at: 30 * time.Second},
		{name: "passing check after the period", at: 31 * time.Second, passed: true, release: true},
		{name: "repeat doubles", at: 40 * time.Second, eject: true, want: time.Minute},
		{name: "released", at: 100 * time.Second, passed: true, release: true},
		{name: "third", at: 110 * time.Second, eject: true, want: 2 * time.Minute},
		{name: "released again", at: 230 * time.Second, passed: true, release: true},
		{name: "fourth", at: 231 * time.Second, eject: true, want: 4 * time.Minute},
		{name: "released 4", at: 471 * time.Second, passed: true, release: true},
		{name: "capped", at: 472 * time.Second, eject: true, want: 5 * time.Minute},
		{name: "released 5", at: 772 * time.Second, passed: true, release: true},
		{name: "still capped", at: 773 * time.Second, eject: true, want: 5 * time.Minute},
		{name: "released 6", at: 1073 * time.Second, passed: true, release: true},
		{name: "just under forget time", at: 1073*time.Second + ejectForgetAfter - time.Second, eject: true, want: 5 * time.Minute},
		{name: "released 7", at: 1700 * time.Second, passed: true, release: true},
		{name: "forgotten after five quiet minutes", at: 1700*time.Second + ejectForgetAfter, eject: true, want: 30 * time.Second},
	}
	var e ejection
	if e.release(t0, true) {
		t.Fatal("released an endpoint that was never ejected")
	}
	for _, s := range steps {
		if s.eject {
			if got := e.eject(at(s.at)); got != s.want || !e.ejected || !e.until.Equal(at(s.at+s.want)) {
				t.Fatalf("%s: eject = %v until %v, want %v until %v", s.name, got, e.until, s.want, at(s.at+s.want))
			}
			continue
		}
		if got := e.release(at(s.at), s.passed); got != s.release || e.ejected == s.release {
			t.Fatalf("%s: release = %v (ejected %v), want %v", s.name, got, e.ejected, s.release)
		}
	}
}

// report reports n outcomes for endpoint k of region 0.
func report(c *Checker, k, n int, o Outcome) {
	for range n {
		c.Report(0, k, o)
	}
}

func TestReportEjects(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	h := fastHealth("none")
	var changes atomic.Int64
	c := startChecker(t, []config.Region{regionOf("r", h, 2, "http://10.0.0.1", "http://10.0.0.2")},
		Options{Now: clock.Now, OnChange: func() { changes.Add(1) }})
	ep := c.regions[0].endpoints[0]

	report(c, 0, 4, OutcomeTimeout)
	c.Report(0, 0, OutcomeSuccess)
	report(c, 0, 4, Outcome5xx)
	if s := c.Snapshot(); s.Regions[0].Endpoints[0].Ejected || !s.Regions[0].Up {
		t.Fatal("ejected after 4 errors, a success and 4 errors; want 5 consecutive")
	}
	c.Report(0, 0, OutcomeConnectFailure)
	s := c.Snapshot()
	e := s.Regions[0].Endpoints[0]
	if !e.Ejected || !e.Until.Equal(clock.Now().Add(30*time.Second)) || s.EndpointUp(0, 0) || s.Regions[0].Up {
		t.Fatalf("after 5 errors: endpoint %+v, region up %v; want ejected 30s, region down (min_healthy 2)", e, s.Regions[0].Up)
	}
	waitFor(t, 5*time.Second, "OnChange", func() bool { return changes.Load() >= 1 })
	report(c, 0, 20, Outcome5xx)
	if ep.ej.count != 1 {
		t.Errorf("errors while ejected re-ejected: %d ejections, want 1", ep.ej.count)
	}

	clock.Advance(29 * time.Second)
	if _, still := c.expire(ep); !still {
		t.Fatal("ejection ended before its period")
	}
	clock.Advance(time.Second)
	waitFor(t, 5*time.Second, "ejection to end", func() bool { return c.Snapshot().EndpointUp(0, 0) })
	if !c.Snapshot().Regions[0].Up {
		t.Error("region still down after the ejection ended")
	}

	report(c, 0, 5, OutcomeTimeout)
	if e := endpointState(c, 0, 0); !e.Ejected || !e.Until.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("second ejection = %+v, want one minute", e)
	}
}

func TestEjectedProbedEndpointNeedsPassingProbe(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv := newFlipServer(t, http.StatusOK)
	c := startChecker(t, []config.Region{regionOf("r", fastHealth("http"), 1, srv.URL)}, Options{Now: clock.Now})
	waitFor(t, 5*time.Second, "endpoint up", func() bool { return c.Snapshot().EndpointUp(0, 0) })

	report(c, 0, 5, Outcome5xx)
	if !endpointState(c, 0, 0).Ejected {
		t.Fatal("not ejected after 5 errors")
	}
	// waitProbes waits until n more probes were served and applied: a
	// probe is applied after it is served, so n+1 served means n applied.
	waitProbes := func(n int64) {
		t.Helper()
		from := srv.served.Load()
		waitFor(t, 5*time.Second, "probes", func() bool { return srv.served.Load() >= from+n+1 })
	}
	waitProbes(2)
	if e := endpointState(c, 0, 0); !e.Ejected || !e.Up {
		t.Fatalf("passing probes within the period: %+v, want still ejected (and probe-up)", e)
	}

	srv.status.Store(http.StatusServiceUnavailable)
	waitProbes(1)
	clock.Advance(31 * time.Second)
	waitProbes(2)
	if e := endpointState(c, 0, 0); !e.Ejected {
		t.Fatalf("failing probes after the period ended the ejection: %+v", e)
	}

	srv.status.Store(http.StatusOK)
	waitFor(t, 5*time.Second, "ejection to end", func() bool { return !endpointState(c, 0, 0).Ejected })
	waitFor(t, 5*time.Second, "endpoint up", func() bool { return c.Snapshot().EndpointUp(0, 0) })
}

func TestReportIgnoresOutOfRange(t *testing.T) {
	t.Parallel()
	c := stepChecker(t, []config.Region{regionOf("r", fastHealth("none"), 1, "http://10.0.0.1")}, Options{})
	before := c.Snapshot()
	report(&Checker{}, 0, 1, Outcome5xx) // a checker with no table
	for _, idx := range [][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}} {
		for range ejectAfterErrors {
			c.Report(idx[0], idx[1], OutcomeTimeout)
		}
	}
	for range ejectAfterErrors {
		c.Report(0, 0, Outcome(99))
	}
	if c.Snapshot() != before {
		t.Error("out-of-range or unknown reports changed the snapshot")
	}
}

func TestReportConcurrent(t *testing.T) {
	t.Parallel()
	c := stepChecker(t, []config.Region{regionOf("r", fastHealth("none"), 1, "http://10.0.0.1", "http://10.0.0.2")}, Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				c.Report(0, 0, Outcome5xx)
				if i%2 == 0 {
					c.Report(0, 1, OutcomeSuccess)
				} else {
					c.Report(0, 1, Outcome(g%3+1))
				}
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.regions[0].endpoints[0].ej.count; n != 1 {
		t.Errorf("endpoint 0: %d ejections, want exactly 1", n)
	}
	if !c.Snapshot().Regions[0].Endpoints[0].Ejected {
		t.Error("endpoint 0 not ejected")
	}
}

func BenchmarkReport(b *testing.B) {
	c, err := New([]config.Region{regionOf("r", fastHealth("none"), 1, "http://10.0.0.1")}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Report(0, 0, OutcomeSuccess)
		}
	})
}

func TestEjectionWithoutProbesBeforeStart(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := newChecker(t, []config.Region{regionOf("r", fastHealth("none"), 1, "http://10.0.0.1")}, Options{Now: clock.Now})
	report(c, 0, ejectAfterErrors, OutcomeConnectFailure)
	if !endpointState(c, 0, 0).Ejected {
		t.Fatal("not ejected before Start")
	}
	clock.Advance(ejectBase)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "ejection to end after Start", func() bool { return c.Snapshot().EndpointUp(0, 0) })
	c.mu.Lock()
	running := c.regions[0].endpoints[0].cancel != nil
	c.mu.Unlock()
	if running {
		t.Error("an endpoint without probes keeps a goroutine after its ejection ended")
	}
}
