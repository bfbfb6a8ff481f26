package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/health"
)

// timedReporter forwards reports to the health checker and remembers when
// region 0 was last tried.
type timedReporter struct {
	next   health.Reporter
	lastA  atomic.Int64 // unix nanoseconds
	triesA atomic.Int64
}

func (r *timedReporter) Report(region, endpoint int, o health.Outcome) {
	if region == 0 {
		r.lastA.Store(time.Now().UnixNano())
		r.triesA.Add(1)
	}
	r.next.Report(region, endpoint, o)
}

// TestFailoverUnderLoad runs a bounded load while the preferred region's
// upstreams refuse connections: no request fails, and once passive health
// ejects them (the node rebuilds the snapshots on the checker's OnChange)
// new requests stop trying the dead region.
func TestFailoverUnderLoad(t *testing.T) {
	forPaths(t, func(t *testing.T, path servePath) {
		const (
			workers  = 8
			duration = 2 * time.Second
		)
		b := &named{name: "b"}
		svc := proxyService("api", []string{testHost}, "a", "b")
		// The default 20% budget: retries after connect failures take no
		// budget slot, so the first burst of 8 refused requests all fail over.
		svc.Proxy.RetryBudget = 20
		cfg := &config.Config{
			Regions: []config.Region{
				testRegion("a", deadURL(t), deadURL(t)),
				testRegion("b", upstream(t, b.ServeHTTP).URL),
			},
			Services: []config.Service{svc},
		}

		var h *harness
		var ejectedAt atomic.Int64
		var checker *health.Checker
		rebuild := func() {
			hs := checker.Snapshot()
			if err := h.p.Update(Input{Config: cfg, Policy: policyFor(t, cfg, hs), Health: hs}); err != nil {
				t.Errorf("update on health change: %v", err)
			}
			if !hs.RegionUp(0) {
				ejectedAt.CompareAndSwap(0, time.Now().UnixNano())
			}
		}
		checker, err := health.New(cfg.Regions, health.Options{Logger: quietLogger(), OnChange: rebuild})
		if err != nil {
			t.Fatal(err)
		}
		rep := &timedReporter{next: checker}
		h = newHarness(t, cfg, func(o *Options) { o.Reporter = rep }, path)
		h.update(checker.Snapshot())
		if err := checker.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer checker.Stop()

		var ok, failed atomic.Int64
		deadline := time.Now().Add(duration)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
					resp, err := h.c.Do(h.request(http.MethodGet, testHost, "/", nil))
					if err != nil {
						failed.Add(1)
						continue
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK || string(body) != "b" {
						failed.Add(1)
						continue
					}
					ok.Add(1)
				}
			}()
		}
		wg.Wait()

		t.Logf("%d requests answered, %d failed, %d attempts at the dead region", ok.Load(), failed.Load(), rep.triesA.Load())
		if failed.Load() != 0 {
			t.Errorf("%d requests failed, want 0", failed.Load())
		}
		if ok.Load() < 100 {
			t.Errorf("only %d requests answered: the load did not run", ok.Load())
		}
		ej := ejectedAt.Load()
		if ej == 0 {
			t.Fatal("region a was never marked down")
		}
		if late := time.Duration(rep.lastA.Load() - ej); late > time.Second {
			t.Errorf("region a was still tried %v after it was marked down, want < 1s", late)
		}
		if got := h.metric("requests", "api", "b", "200"); got != float64(ok.Load()) {
			t.Errorf("got %v requests{b,200}, want %d", got, ok.Load())
		}
		if got := h.metric("retries", "api", "a", "connect-failure"); got < 1 {
			t.Errorf("got %v connect-failure retries in a, want some", got)
		}
		if got := h.metric("failovers", "api", "a", "b"); got < 1 {
			t.Errorf("got %v failovers a→b, want some", got)
		}
	})
}
