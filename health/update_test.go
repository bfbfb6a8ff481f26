package health

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meridian-edge/meridian/config"
)

func TestUpdateKeepsState(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	a, b, d := newFlipServer(t, http.StatusOK), newFlipServer(t, http.StatusOK), newFlipServer(t, http.StatusOK)
	newSrv := newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	reg := prometheus.NewRegistry()
	c := startChecker(t, []config.Region{regionOf("r", h, 1, a.URL, b.URL, d.URL)},
		Options{Now: clock.Now, Registerer: reg})
	waitFor(t, 5*time.Second, "endpoints up with RTTs", func() bool {
		for _, e := range c.Snapshot().Regions[0].Endpoints {
			if !e.Up || e.RTT == 0 {
				return false
			}
		}
		return true
	})
	report(c, 0, 5, OutcomeTimeout) // eject a
	before := c.Snapshot().Regions[0]
	epA, epB := c.regions[0].endpoints[0], c.regions[0].endpoints[1]

	changedPath := h
	changedPath.Path = "/other"
	c.Update([]config.Region{
		regionOf("s", fastHealth("none"), 1, "http://10.0.0.9"),
		regionOf("r", h, 1, b.URL, newSrv.URL, a.URL),
		regionOf("t", changedPath, 1, d.URL),
	})
	s := c.Snapshot()
	if len(s.Regions) != 3 || s.Regions[1].Name != "r" {
		t.Fatalf("regions after Update = %+v, want s, r, t", s.Regions)
	}
	r := s.Regions[1]
	if got := r.Endpoints[2]; !got.Ejected || !got.Until.Equal(before.Endpoints[0].Until) {
		t.Errorf("moved endpoint a = %+v, want still ejected until %v", got, before.Endpoints[0].Until)
	}
	if got := r.Endpoints[0]; !got.Up || got.RTT == 0 || got.LastCheck.IsZero() {
		t.Errorf("moved endpoint b = %+v, want up with its RTT", got)
	}
	if got := r.Endpoints[1]; got.Up || got.LastResult != "" {
		t.Errorf("new endpoint = %+v, want down with no result", got)
	}
	if got := s.Regions[2].Endpoints[0]; got.Up || got.LastResult != "" {
		t.Errorf("endpoint with a changed health path = %+v, want a fresh start", got)
	}
	if c.regions[1].endpoints[2] != epA || c.regions[1].endpoints[0] != epB {
		t.Error("kept endpoints were recreated")
	}

	// Reports follow the new indexes: endpoint 0 of region 1 is now b.
	report(c, 0, 0, OutcomeSuccess)
	c.Report(1, 0, Outcome5xx)
	if epB.errs.Load() != 1 {
		t.Errorf("b's error count = %d after one report at its new index, want 1", epB.errs.Load())
	}

	waitFor(t, 5*time.Second, "new endpoints up", func() bool {
		s := c.Snapshot()
		return s.EndpointUp(1, 1) && s.EndpointUp(2, 0)
	})
	if got := newSrv.lastRequest().URL.Path; got != "/health" {
		t.Errorf("new endpoint probed at %q, want /health", got)
	}
	if got := d.lastRequest().URL.Path; got != "/other" {
		t.Errorf("changed endpoint probed at %q, want /other", got)
	}

	// Three result series per probed endpoint; d's under region r are gone.
	if n := testutil.CollectAndCount(reg, "meridian_health_checks_total"); n != 3*4 {
		t.Errorf("checks series = %d, want 12 (a, b, new, d under t; d under r removed)", n)
	}
}

func TestUpdateKeepsIndexesOfBadEndpoints(t *testing.T) {
	t.Parallel()
	srv := newFlipServer(t, http.StatusOK)
	bad := fastHealth("ping")
	c := startChecker(t, []config.Region{regionOf("r", fastHealth("http"), 1, srv.URL)}, Options{})
	waitFor(t, 5*time.Second, "endpoint up", func() bool { return c.Snapshot().EndpointUp(0, 0) })
	c.Update([]config.Region{
		regionOf("r", fastHealth("http"), 1, "gopher://10.0.0.1", srv.URL),
		regionOf("s", bad, 1, "http://10.0.0.2"),
	})
	s := c.Snapshot()
	if len(s.Regions) != 2 || len(s.Regions[0].Endpoints) != 2 || len(s.Regions[1].Endpoints) != 1 {
		t.Fatalf("snapshot shape = %+v, want the config's indexes", s.Regions)
	}
	tests := []struct {
		name string
		e    EndpointState
		want string
	}{
		{"bad url", s.Regions[0].Endpoints[0], `invalid: url "gopher://10.0.0.1": scheme must be http or https`},
		{"bad health type", s.Regions[1].Endpoints[0], `invalid: health type "ping" is not one of http, https, tcp, none`},
	}
	for _, tt := range tests {
		if tt.e.Up || tt.e.LastResult != tt.want {
			t.Errorf("%s: endpoint = up %v, result %q; want down, %q", tt.name, tt.e.Up, tt.e.LastResult, tt.want)
		}
	}
	if !s.EndpointUp(0, 1) {
		t.Error("the good endpoint lost its state")
	}
	// Ejecting and releasing an invalid endpoint leaves it down.
	report(c, 0, ejectAfterErrors, OutcomeConnectFailure)
	if !endpointState(c, 0, 0).Ejected {
		t.Error("invalid endpoint not ejected")
	}
	if !c.Ready() {
		t.Error("invalid endpoints keep the checker unready")
	}
}

func TestUpdateStopsRemovedProbes(t *testing.T) {
	t.Parallel()
	keep, drop := newFlipServer(t, http.StatusOK), newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	c := startChecker(t, []config.Region{regionOf("r", h, 1, keep.URL, drop.URL)}, Options{})
	waitFor(t, 5*time.Second, "ready", c.Ready)
	c.Update([]config.Region{regionOf("r", h, 1, keep.URL)})
	dropped := drop.served.Load()
	from := keep.served.Load()
	waitFor(t, 5*time.Second, "five more probes of the kept endpoint", func() bool { return keep.served.Load() >= from+5 })
	// One probe may have been in flight when the endpoint was removed.
	if n := drop.served.Load() - dropped; n > 1 {
		t.Errorf("removed endpoint probed %d more times, want at most 1", n)
	}
}

func TestUpdateBeforeStartAndReady(t *testing.T) {
	t.Parallel()
	srv := newFlipServer(t, http.StatusOK)
	h := fastHealth("http")
	c := newChecker(t, []config.Region{regionOf("r", h, 1, srv.URL, "http://"+closedAddr(t))}, Options{})
	c.Update([]config.Region{regionOf("r", h, 1, srv.URL)})
	if c.Ready() {
		t.Fatal("ready before any probe")
	}
	c.Update([]config.Region{regionOf("r", fastHealth("none"), 1, srv.URL)})
	if !c.Ready() {
		t.Error("not ready with only unprobed (type none) endpoints left")
	}
}
