package shift

import (
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/state"
)

// window builds a window of ok fast requests, errs failing ones and slow
// ones taking slowD.
func window(ok, errs, slow int, slowD time.Duration) Window {
	var c Counters
	for range ok {
		c.Observe(20*time.Millisecond, false)
	}
	for range errs {
		c.Observe(20*time.Millisecond, true)
	}
	for range slow {
		c.Observe(slowD, false)
	}
	return Window(c)
}

func TestJudge(t *testing.T) {
	const hold = time.Minute
	both := state.Guard{MaxErrorRatio: 0.01, MaxP95: 500 * time.Millisecond, MinRequests: 100, MaxWait: 4 * time.Minute}
	cases := []struct {
		name    string
		g       state.Guard
		elapsed time.Duration
		w       Window
		want    Outcome
		reason  string
	}{
		{"holding", both, 30 * time.Second, window(500, 0, 0, 0), Wait, "holding: 30s of 1m0s, 500 requests so far"},
		{"holding, errors below min_requests", both, 30 * time.Second, window(10, 50, 0, 0), Wait, "holding"},
		{"early breach with min_requests", both, 30 * time.Second, window(50, 50, 0, 0), Breach,
			"guard breached after 30s: error ratio 50.00% over 100 requests exceeds max_error_ratio 1.00%"},
		{"pass", both, hold, window(995, 5, 0, 0), Pass, "passed: 1000 requests, error ratio 0.50% (max 1.00%), p95 "},
		{"error ratio at the limit passes", both, hold, window(990, 10, 0, 0), Pass, "passed"},
		{"error ratio over the limit", both, hold, window(989, 11, 0, 0), Breach, "error ratio 1.10% over 1000 requests exceeds max_error_ratio 1.00%"},
		{"p95 over the limit", both, hold, window(900, 0, 100, 2*time.Second), Breach, "exceeds max_p95 500ms"},
		{"p95 under the limit", both, hold, window(960, 0, 40, 2*time.Second), Pass, "passed"},
		{"both limits", both, hold, window(800, 100, 100, 2*time.Second), Breach, "error ratio 10.00% over 1000 requests exceeds max_error_ratio 1.00%; p95 "},
		{"no limits set", state.Guard{}, hold, window(0, 100, 100, 30*time.Second), Pass, "passed: 200 requests, error ratio 50.00%, p95 "},
		{"only p95 set ignores errors", state.Guard{MaxP95: time.Second}, hold, window(0, 200, 0, 0), Pass, "passed"},
		{"only error ratio set ignores latency", state.Guard{MaxErrorRatio: 0.5}, hold, window(0, 0, 200, time.Minute), Pass, "passed"},
		{"few requests after hold waits", both, 2 * time.Minute, window(40, 0, 0, 0), Wait,
			"waiting for traffic: 40 of 100 requests after 2m0s; judging by 4m0s at the latest"},
		{"few requests breaching waits", both, 2 * time.Minute, window(20, 20, 0, 0), Wait, "waiting for traffic"},
		{"few requests at max_wait pass", both, 4 * time.Minute, window(40, 0, 0, 0), Pass,
			"passed on 40 requests (fewer than 100 by max_wait 4m0s): error ratio 0.00% (max 1.00%), p95 "},
		{"few requests at max_wait breach", both, 4 * time.Minute, window(20, 20, 0, 0), Breach,
			"guard breached on 40 requests (fewer than 100 by max_wait 4m0s): error ratio 50.00%"},
		{"nothing at max_wait passes unmeasured", both, 4 * time.Minute, Window{}, Pass,
			"passed unmeasured: no requests reached the gaining regions in 4m0s (max_wait)"},
		{"default min_requests is 100", state.Guard{MaxErrorRatio: 0.01}, hold, window(99, 0, 0, 0), Wait, "99 of 100 requests"},
		{"default max_wait is 4 holds: before", state.Guard{MaxErrorRatio: 0.01}, 4*hold - time.Second, window(5, 0, 0, 0), Wait, "judging by 4m0s"},
		{"default max_wait is 4 holds: at", state.Guard{MaxErrorRatio: 0.01}, 4 * hold, window(5, 0, 0, 0), Pass, "passed on 5 requests"},
		{"small min_requests", state.Guard{MaxErrorRatio: 0.01, MinRequests: 20}, hold, window(20, 0, 0, 0), Pass, "passed: 20 requests"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.g, hold, tc.elapsed, tc.w)
			if v.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", v.Outcome, v.Reason, tc.want)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, tc.reason)
			}
			if v.Requests != tc.w.Requests || v.ErrorRatio != tc.w.ErrorRatio() || v.P95 != tc.w.Quantile(0.95) {
				t.Errorf("figures %d/%v/%v, want the window's %d/%v/%v", v.Requests, v.ErrorRatio, v.P95,
					tc.w.Requests, tc.w.ErrorRatio(), tc.w.Quantile(0.95))
			}
		})
	}
}

func TestJudgeP95Figure(t *testing.T) {
	// 900 fast, 100 at 2s: the 950th request is in the middle of the 2s
	// bucket's count, so p95 is that bucket's midpoint.
	v := Judge(state.Guard{MaxP95: 500 * time.Millisecond}, time.Second, time.Second, window(900, 0, 100, 2*time.Second))
	want := interp(Bucket(2*time.Second), 0.5)
	if v.P95 != want {
		t.Fatalf("p95 = %v, want %v", v.P95, want)
	}
	if !strings.Contains(v.Reason, "p95 "+round(want).String()+" over 1000 requests exceeds max_p95 500ms") {
		t.Errorf("reason %q lacks the p95 figure %v", v.Reason, round(want))
	}
}

func TestWithDefaults(t *testing.T) {
	g := WithDefaults(state.Guard{}, 5*time.Minute)
	if g.MinRequests != 100 || g.MaxWait != 20*time.Minute || g.MaxErrorRatio != 0 || g.MaxP95 != 0 {
		t.Errorf("defaults = %+v, want min_requests 100, max_wait 20m, no limits", g)
	}
	set := state.Guard{MinRequests: 7, MaxWait: time.Hour}
	if g := WithDefaults(set, time.Minute); g != set {
		t.Errorf("WithDefaults changed set fields: %+v", g)
	}
}

func TestJudgeHealth(t *testing.T) {
	const hold = time.Minute
	cases := []struct {
		name    string
		elapsed time.Duration
		regions []RegionHealth
		want    Outcome
		reason  string
	}{
		{"holding", 10 * time.Second, []RegionHealth{{"r2", true, true}}, Wait, "holding: 10s of 1m0s"},
		{"held", hold, []RegionHealth{{"r2", true, true}}, Pass, "passed: gaining region(s) r2 stayed up for 1m0s"},
		{"went down", 10 * time.Second, []RegionHealth{{"r2", true, true}, {"r3", false, true}}, Breach,
			"guard breached after 10s: gaining region(s) r3 went down"},
		{"all down from the start", 0, []RegionHealth{{"r2", false, false}}, Breach, "no gaining region is up (r2)"},
		{"one down from the start", hold, []RegionHealth{{"r2", false, false}, {"r3", true, true}}, Pass, "gaining region(s) r3 stayed up"},
		{"came up", hold, []RegionHealth{{"r2", true, false}}, Pass, "passed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := JudgeHealth(hold, tc.elapsed, tc.regions)
			if v.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", v.Outcome, v.Reason, tc.want)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, tc.reason)
			}
		})
	}
}

func TestJudgeProxy(t *testing.T) {
	const hold = time.Minute
	g := state.Guard{MaxErrorRatio: 0.01, MinRequests: 100}
	up := []RegionHealth{{"r2", true, true}}
	cases := []struct {
		name    string
		elapsed time.Duration
		w       Window
		regions []RegionHealth
		want    Outcome
		reason  string
	}{
		{"window breach wins", time.Second, window(50, 50, 0, 0), []RegionHealth{{"r2", false, true}}, Breach, "exceeds max_error_ratio"},
		{"region went down before min_requests", time.Second, window(0, 5, 0, 0), []RegionHealth{{"r2", false, true}}, Breach,
			"guard breached after 1s: gaining region(s) r2 went down (measured: 5 requests, error ratio 100.00%, p95 "},
		{"healthy holding", time.Second, window(5, 0, 0, 0), up, Wait, "holding"},
		{"healthy held", hold, window(200, 0, 0, 0), up, Pass, "passed: 200 requests"},
		{"down from the start, another up", hold, window(200, 0, 0, 0), []RegionHealth{{"r2", false, false}, {"r3", true, true}}, Pass, "passed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := JudgeProxy(g, hold, tc.elapsed, tc.w, tc.regions)
			if v.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", v.Outcome, v.Reason, tc.want)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", v.Reason, tc.reason)
			}
		})
	}
}
