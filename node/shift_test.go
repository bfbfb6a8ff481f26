package node

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/state"
)

var shiftActor = Actor{Token: "ops", Reason: "test"}

func TestShiftCompletes(t *testing.T) {
	e := newShiftEnv(t)
	req := ShiftRequest{Region: "green", Steps: []int{50, 100}, Hold: 300 * time.Millisecond,
		Guard: state.Guard{MaxErrorRatio: 0.01, MaxP95: 2 * time.Second, MinRequests: 20}}
	sh, err := e.n.StartShift("web", req, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	if sh.State != state.ShiftRunning || sh.StartDial != 0 || sh.Step != 0 || e.dial("web", "green") != 50 {
		t.Fatalf("started: %+v, dial %d; want running at step 0, dial 50, start dial 0", sh, e.dial("web", "green"))
	}
	if sh.Guard.MaxWait != 4*req.Hold {
		t.Errorf("max_wait %v, want the default 4×hold %v", sh.Guard.MaxWait, 4*req.Hold)
	}
	if g := e.gauge("meridian_shift_step", "service", "web", "region", "green"); g != 0 {
		t.Errorf("meridian_shift_step while on step 0 = %v, want 0", g)
	}
	if !e.n.View().Degraded[0] {
		t.Error("service web is not degraded while a shift runs")
	}
	stop := e.load("web.example.test")
	sh = e.waitEnded("web", sh.ID, 30*time.Second)
	codes := stop()
	if sh.State != state.ShiftDone {
		t.Fatalf("shift ended %s (%s), want done; answers %v", sh.State, sh.Reason, codes)
	}
	if d := e.dial("web", "green"); d != 100 {
		t.Errorf("dial after the shift %d, want 100 (the last step)", d)
	}
	if !strings.Contains(sh.Reason, "all 2 steps held") {
		t.Errorf("reason %q", sh.Reason)
	}
	if e.ups["green"].hits.Load() == 0 || codes[http.StatusOK] == 0 {
		t.Errorf("green got %d requests, answers %v: the guard judged no traffic", e.ups["green"].hits.Load(), codes)
	}
	want := []string{"shift.start 0→shift " + sh.ID, "shift.step 0→50", "shift.step 50→100", "shift.done 100→100"}
	got := e.actions()
	if len(got) != len(want) {
		t.Fatalf("audit %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("audit %d: %q, want %q…", i, got[i], want[i])
		}
	}
	if g := e.gauge("meridian_shift_step", "service", "web", "region", "green"); g != -1 {
		t.Errorf("meridian_shift_step after the shift = %v, want -1", g)
	}
	if e.n.View().Degraded[0] {
		t.Error("service web still degraded after the shift")
	}
	// The dial is the operator's again.
	if _, err := e.n.SetDials("web", map[string]int{"green": 20}, "", shiftActor); err != nil {
		t.Errorf("setting the dial after the shift: %v", err)
	}
}

func TestShiftRollsBackOnErrors(t *testing.T) {
	e := newShiftEnv(t)
	e.ups["green"].fail.Store(true) // its health checks still pass
	hold := 2 * time.Second
	sh, err := e.n.StartShift("web", ShiftRequest{Region: "green", Steps: []int{50, 100}, Hold: hold,
		Guard: state.Guard{MaxErrorRatio: 0.05, MinRequests: 20}}, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	stop := e.load("web.example.test")
	sh = e.waitEnded("web", sh.ID, 30*time.Second)
	codes := stop()
	if sh.State != state.ShiftRolledBack {
		t.Fatalf("shift ended %s (%s), want rolled_back; answers %v", sh.State, sh.Reason, codes)
	}
	if took := sh.Updated.Sub(sh.Created); took >= hold {
		t.Errorf("rolled back after %v, want within the first hold (%v)", took, hold)
	}
	if d := e.dial("web", "green"); d != 0 {
		t.Errorf("dial after rollback %d, want the start dial 0", d)
	}
	// Either the error ratio crosses the limit first, or the proxy ejects
	// green's endpoint for its errors and green goes down: a breach both.
	for _, want := range []string{"step 1/2: guard breached", "error ratio 100.00%"} {
		if !strings.Contains(sh.Reason, want) {
			t.Errorf("reason %q lacks %q", sh.Reason, want)
		}
	}
	if got := e.actions(); len(got) != 3 || !strings.HasPrefix(got[2], "shift.rollback 50→0") {
		t.Errorf("audit %q, want start, step, rollback 50→0", got)
	}
	if c := e.gauge("meridian_shift_rollbacks_total", "service", "web", "region", "green"); c != 1 {
		t.Errorf("meridian_shift_rollbacks_total = %v, want 1", c)
	}
	if codes[http.StatusInternalServerError] == 0 {
		t.Errorf("answers %v: no 500 reached the clients", codes)
	}
}

func TestShiftAbort(t *testing.T) {
	e := newShiftEnv(t)
	sh, err := e.n.StartShift("web", ShiftRequest{Region: "green", Steps: []int{50, 100}, Hold: time.Minute}, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.dial("web", "green"); d != 50 {
		t.Fatalf("dial on step 0 = %d, want 50", d)
	}
	if _, err := e.n.AbortShift("api", sh.ID, shiftActor); !errors.Is(err, ErrNotFound) {
		t.Errorf("abort through another service: %v, want not found", err)
	}
	ab, err := e.n.AbortShift("web", sh.ID, Actor{Token: "ops", Reason: "standby not ready"})
	if err != nil {
		t.Fatal(err)
	}
	if ab.State != state.ShiftAborted || ab.Reason != "aborted by ops: standby not ready" {
		t.Errorf("aborted shift: %s %q", ab.State, ab.Reason)
	}
	if d := e.dial("web", "green"); d != 0 {
		t.Errorf("dial after abort = %d, want the start dial 0", d)
	}
	if got := e.actions(); len(got) != 3 || got[2] != "shift.abort 50→0" {
		t.Errorf("audit %q, want start, step, abort 50→0", got)
	}
	cases := []struct {
		name, service, id string
		kind              error
		msg               string
	}{
		{"again", "web", sh.ID, ErrConflict, "shift " + sh.ID + " is aborted, not running"},
		{"unknown id", "web", "nope", ErrNotFound, `service "web" has no shift "nope"`},
		{"unknown service", "nope", sh.ID, ErrNotFound, `unknown service "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.n.AbortShift(tc.service, tc.id, shiftActor)
			if !errors.Is(err, tc.kind) || err.Error() != tc.msg {
				t.Errorf("got %v, want %q (%v)", err, tc.msg, tc.kind)
			}
		})
	}
}

func TestShiftResumesAfterRestart(t *testing.T) {
	e := newShiftEnv(t)
	hold := 400 * time.Millisecond
	sh, err := e.n.StartShift("web", ShiftRequest{Region: "green", Steps: []int{30, 60, 100}, Hold: hold,
		Guard: state.Guard{MaxErrorRatio: 0.01, MinRequests: 10}}, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	stop := e.load("web.example.test")
	waitFor(t, 15*time.Second, "step 2", func() bool { return e.shift("web", sh.ID).Step == 1 })
	stop()
	e.stop()

	restarted := time.Now()
	e.start()
	got := e.shift("web", sh.ID)
	if got.State != state.ShiftRunning || got.Step != 1 || e.dial("web", "green") != 60 {
		t.Fatalf("after restart: %s at step %d, dial %d; want running at step 1, dial 60", got.State, got.Step, e.dial("web", "green"))
	}
	stop = e.load("web.example.test")
	got = e.waitEnded("web", sh.ID, 30*time.Second)
	stop()
	if got.State != state.ShiftDone || e.dial("web", "green") != 100 {
		t.Fatalf("ended %s (%s) with dial %d, want done at 100", got.State, got.Reason, e.dial("web", "green"))
	}
	// The step interrupted by the restart held again in full.
	if d := got.StepStarted.Sub(restarted); d < hold {
		t.Errorf("step 3 began %v after the restart, want at least a full hold (%v)", d, hold)
	}
	want := "shift.start,shift.step 0→30,shift.step 30→60,shift.step 60→100,shift.done"
	var acts []string
	for _, a := range e.actions() {
		if strings.HasPrefix(a, "shift.start") || strings.HasPrefix(a, "shift.done") {
			a, _, _ = strings.Cut(a, " ")
		}
		acts = append(acts, a)
	}
	if strings.Join(acts, ",") != want {
		t.Errorf("audit %q, want %s", acts, want)
	}
}

func TestShiftConflictsAndValidation(t *testing.T) {
	e := newShiftEnv(t)
	first, err := e.n.StartShift("web", ShiftRequest{Region: "green", Steps: []int{50}, Hold: time.Minute}, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.n.StartShift("web", ShiftRequest{Region: "blue", Steps: []int{90}, Hold: time.Minute}, shiftActor); err != nil {
		t.Errorf("a shift of another region of the service: %v", err)
	}
	cases := []struct {
		name    string
		service string
		req     ShiftRequest
		kind    error
		msg     string
	}{
		{"same region", "web", ShiftRequest{Region: "green", Steps: []int{10}}, ErrConflict,
			"shift " + first.ID + " is already running on web/green (step 1 of 1); abort it first"},
		{"unknown service", "nope", ShiftRequest{Region: "green", Steps: []int{10}}, ErrNotFound, `unknown service "nope"`},
		{"no region", "api", ShiftRequest{Steps: []int{10}}, ErrInvalid, "a shift needs a region"},
		{"foreign region", "api", ShiftRequest{Region: "red", Steps: []int{10}}, ErrInvalid, `region "red" is not a region of service "api"`},
		{"no steps", "api", ShiftRequest{Region: "green"}, ErrInvalid, "a shift needs at least one step"},
		{"step above 100", "api", ShiftRequest{Region: "green", Steps: []int{50, 150}}, ErrInvalid, "step 2: dial 150 is outside 0..100"},
		{"negative hold", "api", ShiftRequest{Region: "green", Steps: []int{50}, Hold: -time.Second}, ErrInvalid, "hold -1s is negative"},
		{"error ratio", "api", ShiftRequest{Region: "green", Steps: []int{50}, Guard: state.Guard{MaxErrorRatio: 2}}, ErrInvalid, "max_error_ratio 2 is outside 0..1"},
		{"p95", "api", ShiftRequest{Region: "green", Steps: []int{50}, Guard: state.Guard{MaxP95: -1}}, ErrInvalid, "max_p95 -1ns is negative"},
		{"min requests", "api", ShiftRequest{Region: "green", Steps: []int{50}, Guard: state.Guard{MinRequests: -5}}, ErrInvalid, "min_requests -5 is negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.n.StartShift(tc.service, tc.req, shiftActor)
			if !errors.Is(err, tc.kind) || err.Error() != tc.msg {
				t.Errorf("got %v, want %q (%v)", err, tc.msg, tc.kind)
			}
		})
	}
	// The shifted region's dial belongs to the shift; others do not.
	_, err = e.n.SetDials("web", map[string]int{"green": 10}, "", shiftActor)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "the dial of web/green is under shift "+first.ID) {
		t.Errorf("dial of the shifted region: %v, want conflict", err)
	}
	if _, err := e.n.SetDials("api", map[string]int{"green": 10}, "", shiftActor); err != nil {
		t.Errorf("dial of the same region in another service: %v", err)
	}
	if d := e.dial("web", "green"); d != 50 {
		t.Errorf("dial of the shifted region %d, want 50", d)
	}
	sh, err := e.n.StartShift("api", ShiftRequest{Region: "blue", Steps: []int{70}}, shiftActor)
	if err != nil || sh.Hold != 5*time.Minute || sh.Guard.MinRequests != 100 || sh.Guard.MaxWait != 20*time.Minute {
		t.Errorf("defaults: %+v, %v; want hold 5m, min_requests 100, max_wait 20m", sh, err)
	}
}

func TestShiftDNSRollsBackWhenGainingRegionGoesDown(t *testing.T) {
	e := newShiftEnv(t)
	sh, err := e.n.StartShift("api", ShiftRequest{Region: "green", Steps: []int{50, 100}, Hold: 10 * time.Second}, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	e.ups["green"].down.Store(true)
	sh = e.waitEnded("api", sh.ID, 30*time.Second)
	if sh.State != state.ShiftRolledBack || !strings.Contains(sh.Reason, "gaining region(s) green went down") {
		t.Fatalf("ended %s (%s), want rolled_back because green went down", sh.State, sh.Reason)
	}
	if d := e.dial("api", "green"); d != 0 {
		t.Errorf("dial after rollback %d, want 0", d)
	}
	if c := e.gauge("meridian_shift_rollbacks_total", "service", "api", "region", "green"); c != 1 {
		t.Errorf("meridian_shift_rollbacks_total = %v, want 1", c)
	}
}

// A drain: the shifted region's dial falls, so the guard watches the
// regions it spills to, and a dns shift toward a healthy region holds.
func TestShiftDNSDrainCompletes(t *testing.T) {
	e := newShiftEnv(t)
	e.ups["green"].down.Store(true)
	waitFor(t, 15*time.Second, "green down", func() bool { return !e.n.View().Policy.Regions[0].Up })
	sh, err := e.n.StartShift("api", ShiftRequest{Region: "blue", Steps: []int{50, 0}, Hold: 200 * time.Millisecond}, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	sh = e.waitEnded("api", sh.ID, 30*time.Second)
	if sh.State != state.ShiftRolledBack || !strings.Contains(sh.Reason, "no gaining region is up (green)") {
		t.Fatalf("drain onto a down region ended %s (%s), want rolled_back", sh.State, sh.Reason)
	}
	e.ups["green"].down.Store(false)
	waitFor(t, 15*time.Second, "green up", func() bool { return e.n.View().Policy.Regions[0].Up })
	sh, err = e.n.StartShift("api", ShiftRequest{Region: "blue", Steps: []int{50, 0}, Hold: 200 * time.Millisecond}, shiftActor)
	if err != nil {
		t.Fatal(err)
	}
	sh = e.waitEnded("api", sh.ID, 30*time.Second)
	if sh.State != state.ShiftDone || e.dial("api", "blue") != 0 {
		t.Fatalf("drain ended %s (%s) at dial %d, want done at 0", sh.State, sh.Reason, e.dial("api", "blue"))
	}
}
