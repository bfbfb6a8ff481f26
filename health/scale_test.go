package health

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meridian-edge/meridian/config"
)

// probeLog records when each endpoint was probed.
type probeLog struct {
	mu    sync.Mutex
	times [][]time.Time
}

func (l *probeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Path: /e/N/health
	parts := strings.Split(r.URL.Path, "/")
	if len(parts) != 4 {
		http.NotFound(w, r)
		return
	}
	i, err := strconv.Atoi(parts[2])
	if err != nil || i < 0 || i >= len(l.times) {
		http.NotFound(w, r)
		return
	}
	now := time.Now()
	l.mu.Lock()
	l.times[i] = append(l.times[i], now)
	l.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test: 1,000 endpoints for 5s")
	}
	// Under the race detector a probe costs several times the CPU; fewer
	// endpoints keep the timing meaningful on a small machine.
	endpoints := 1000
	if raceEnabled {
		endpoints = 200
	}
	// Other processes can hold the CPU for a while without the process
	// looking starved to scaleRound: a round that misses the schedule is
	// measured again. A checker that cannot keep it misses every round.
	const rounds = 3
	for round := 1; ; round++ {
		problems, starved := scaleRound(t, endpoints)
		switch {
		case len(problems) == 0 && starved == "":
			return
		case round < rounds:
			why := starved
			if why == "" {
				why = fmt.Sprintf("%d problems, first: %s", len(problems), problems[0])
			}
			t.Logf("round %d missed the schedule (%s); measuring again", round, why)
			continue
		case starved != "":
			t.Skip(starved)
		}
		for _, p := range problems {
			t.Error(p)
		}
		return
	}
}

// scaleRound measures one round of TestScale: what the checker got wrong,
// or why the machine's timing says nothing about the checker.
func scaleRound(t *testing.T, endpoints int) (problems []string, starved string) {
	const (
		servers   = 4
		perRegion = 100
		interval  = time.Second
		window    = 5 * time.Second
		minProbes = 4
		maxGap    = interval * 3 / 2 // late by at most 50%
	)
	log := &probeLog{times: make([][]time.Time, endpoints)}
	var urls []string
	for range servers {
		srv := httptest.NewServer(log)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	h := config.Health{
		Type:     "http",
		Path:     "/health",
		Interval: config.Duration(interval),
		Timeout:  config.Duration(500 * time.Millisecond),
		Rise:     2,
		Fall:     2,
	}
	var regions []config.Region
	for i := range endpoints {
		if i%perRegion == 0 {
			regions = append(regions, config.Region{Name: "r" + itoa(i/perRegion), Health: h, MinHealthy: 2})
		}
		r := &regions[len(regions)-1]
		r.Endpoints = append(r.Endpoints, config.Endpoint{URL: urls[i%servers] + "/e/" + itoa(i), Weight: 1})
	}

	before := runtime.NumGoroutine()
	reg := prometheus.NewRegistry()
	c := newChecker(t, regions, Options{Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	cpu0 := cpuTime(t)
	start := time.Now()
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	peak := 0
	var stall time.Duration // the sampler's worst oversleep: time the process was not run
	for time.Since(start) < window {
		peak = max(peak, runtime.NumGoroutine())
		t0 := time.Now()
		time.Sleep(100 * time.Millisecond) // sampling period, not synchronisation
		stall = max(stall, time.Since(t0)-100*time.Millisecond)
	}
	ready := c.Ready()
	c.Stop()
	elapsed := time.Since(start)
	cpu := cpuTime(t) - cpu0
	results := map[string]float64{}
	for _, class := range classNames {
		for _, r := range regions {
			for _, e := range r.Endpoints {
				results[class] += testutil.ToFloat64(c.metrics.checks.WithLabelValues(r.Name, e.URL, class))
			}
		}
	}
	t.Logf("probe results: %v", results)

	log.mu.Lock()
	defer log.mu.Unlock()
	var (
		total, few, late int
		worstGap         time.Duration
		firsts           []time.Duration
		examples         []string
	)
	for i, ts := range log.times {
		total += len(ts)
		if len(ts) < minProbes {
			few++
			if few <= 5 {
				examples = append(examples, fmt.Sprintf("endpoint %d: %d probes in %v, want at least %d", i, len(ts), window, minProbes))
			}
		}
		if len(ts) > 0 {
			firsts = append(firsts, ts[0].Sub(start))
		}
		for k := 1; k < len(ts); k++ {
			gap := ts[k].Sub(ts[k-1])
			worstGap = max(worstGap, gap)
			if gap > maxGap {
				late++
				if late <= 5 {
					examples = append(examples, fmt.Sprintf("endpoint %d: probes %d and %d %v apart, want at most %v", i, k-1, k, gap, maxGap))
				}
			}
		}
	}
	t.Logf("CPU %v (%.1f%% of one core, servers included); goroutines %d before, %d peak; sampler stalled %v at worst",
		cpu.Round(time.Millisecond), 100*cpu.Seconds()/elapsed.Seconds(), before, peak, stall.Round(time.Millisecond))
	if (few > 0 || late > 0) && stall > interval/4 && cpu.Seconds() < elapsed.Seconds()/2 {
		// The process was starved by others (it used under half a core,
		// yet a 100ms sleep overran by a quarter interval): the timing
		// says nothing about the checker.
		return nil, fmt.Sprintf("machine overloaded: %d endpoints with too few probes, %d late intervals", few, late)
	}
	problems = append(problems, examples...)
	if few > 0 || late > 0 {
		problems = append(problems, fmt.Sprintf("%d endpoints with too few probes, %d late intervals", few, late))
	}
	if !ready {
		problems = append(problems, "not ready after the window")
	}
	slices.Sort(firsts)
	if len(firsts) == endpoints {
		// The first round is spread over the first interval, not fired at once.
		spread := firsts[len(firsts)*9/10] - firsts[len(firsts)/10]
		if spread < interval/2 {
			problems = append(problems, fmt.Sprintf("first probes spread over %v (10th to 90th percentile), want at least %v", spread, interval/2))
		}
		t.Logf("first probes: 10th percentile %v, 90th %v", firsts[len(firsts)/10], firsts[len(firsts)*9/10])
	}
	t.Logf("%d endpoints, %d probes in %v (%.0f/s); worst gap %v", endpoints, total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), worstGap.Round(time.Millisecond))
	return problems, ""
}
