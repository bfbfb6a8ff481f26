package shift

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/state"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		steps []int
		hold  time.Duration
		g     state.Guard
		want  string
	}{
		{"ok", []int{10, 50, 100}, time.Minute, state.Guard{MaxErrorRatio: 0.01, MaxP95: time.Second}, ""},
		{"default hold", []int{0}, 0, state.Guard{}, ""},
		{"max_wait equal to hold", []int{0}, time.Minute, state.Guard{MaxWait: time.Minute}, ""},
		{"no steps", nil, time.Minute, state.Guard{}, "a shift needs at least one step"},
		{"too many steps", make([]int, 101), time.Minute, state.Guard{}, "a shift has at most 100 steps, not 101"},
		{"step above 100", []int{50, 101}, time.Minute, state.Guard{}, "step 2: dial 101 is outside 0..100"},
		{"negative step", []int{-1}, time.Minute, state.Guard{}, "step 1: dial -1 is outside 0..100"},
		{"negative hold", []int{10}, -time.Second, state.Guard{}, "hold -1s is negative"},
		{"error ratio above 1", []int{10}, time.Minute, state.Guard{MaxErrorRatio: 1.5}, "max_error_ratio 1.5 is outside 0..1"},
		{"error ratio NaN", []int{10}, time.Minute, state.Guard{MaxErrorRatio: math.NaN()}, "max_error_ratio NaN is outside 0..1"},
		{"negative p95", []int{10}, time.Minute, state.Guard{MaxP95: -time.Millisecond}, "max_p95 -1ms is negative"},
		{"negative min_requests", []int{10}, time.Minute, state.Guard{MinRequests: -1}, "min_requests -1 is negative"},
		{"negative max_wait", []int{10}, time.Minute, state.Guard{MaxWait: -time.Second}, "max_wait -1s is negative"},
		{"max_wait below hold", []int{10}, time.Minute, state.Guard{MaxWait: time.Second}, "max_wait 1s is shorter than hold 1m0s"},
		{"max_wait below default hold", []int{10}, 0, state.Guard{MaxWait: time.Minute}, "max_wait 1m0s is shorter than hold 5m0s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.steps, tc.hold, tc.g)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGaining(t *testing.T) {
	regions := []string{"us-east", "us-west", "eu-west"}
	cases := []struct {
		name     string
		from, to int
		want     []string
	}{
		{"rises", 0, 10, []string{"us-west"}},
		{"stays", 50, 50, []string{"us-west"}},
		{"falls", 100, 50, []string{"us-east", "eu-west"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Gaining(regions, "us-west", tc.from, tc.to); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStepMachine(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	sh := state.Shift{ID: "s1", Steps: []int{10, 100}, StartDial: 0, State: state.ShiftRunning, StepStarted: t0}
	if PrevDial(&sh) != 0 || Dial(&sh) != 10 {
		t.Fatalf("step 0: prev %d dial %d, want 0 and 10", PrevDial(&sh), Dial(&sh))
	}
	if a := Next(&sh, Verdict{Outcome: Wait}); a != Hold {
		t.Errorf("wait → %v, want Hold", a)
	}
	if a := Next(&sh, Verdict{Outcome: Pass}); a != Step {
		t.Fatalf("pass on step 0 of 2 → %v, want Step", a)
	}
	t1 := t0.Add(time.Minute)
	d, ok := Advance(&sh, t1)
	if !ok || d != 100 || sh.Step != 1 || !sh.StepStarted.Equal(t1) || !sh.Updated.Equal(t1) {
		t.Fatalf("advance: dial %d ok %v, shift %+v", d, ok, sh)
	}
	if PrevDial(&sh) != 10 {
		t.Errorf("step 1: prev %d, want 10", PrevDial(&sh))
	}
	if a := Next(&sh, Verdict{Outcome: Pass}); a != Done {
		t.Fatalf("pass on the last step → %v, want Done", a)
	}
	if _, ok := Advance(&sh, t1); ok {
		t.Error("advanced past the last step")
	}
	if a := Next(&sh, Verdict{Outcome: Breach}); a != RollBack {
		t.Errorf("breach → %v, want RollBack", a)
	}
	done := sh
	Finish(&done, t1, "all held")
	if done.State != state.ShiftDone || done.Reason != "all held" || Dial(&done) != 100 {
		t.Errorf("finish: %+v", done)
	}
	rb := sh
	if d := Rollback(&rb, t1, "breach"); d != 0 || rb.State != state.ShiftRolledBack || rb.Reason != "breach" {
		t.Errorf("rollback: dial %d, %+v", d, rb)
	}
	ab := sh
	if d := Abort(&ab, t1, "operator"); d != 0 || ab.State != state.ShiftAborted {
		t.Errorf("abort: dial %d, %+v", d, ab)
	}
}
