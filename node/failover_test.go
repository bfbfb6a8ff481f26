package node

import (
	"slices"
	"testing"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/state"
)

func TestTrafficSteps(t *testing.T) {
	t.Parallel()
	cs := &config.Service{Name: "api", Regions: []string{"a", "b"}}
	for _, tc := range []struct {
		name       string
		dials      map[string]int
		from, to   string
		wantRegion string
		wantSteps  []int
	}{
		{"standby at 100: the old primary drains", nil, "a", "b", "a", []int{90, 50, 0}},
		{"old primary part drained", map[string]int{"a": 60}, "a", "b", "a", []int{50, 0}},
		{"old primary already drained", map[string]int{"a": 0}, "a", "b", "a", nil},
		{"failback: the target rises from 0", map[string]int{"a": 0}, "b", "a", "a", []int{10, 50, 100}},
		{"target part raised", map[string]int{"b": 30}, "a", "b", "b", []int{50, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{st: state.Snapshot{Dials: map[string]map[string]int{"api": tc.dials}}}
			region, steps := n.trafficSteps(cs, tc.from, tc.to)
			if region != tc.wantRegion || !slices.Equal(steps, tc.wantSteps) {
				t.Fatalf("got %s %v, want %s %v", region, steps, tc.wantRegion, tc.wantSteps)
			}
		})
	}
}

func TestBreachState(t *testing.T) {
	t.Parallel()
	n := &Node{}
	for _, tc := range []struct {
		step   int
		called bool
		want   string
	}{
		{state.StepReadiness, false, state.FailoverRolledBack},
		{state.StepLag, false, state.FailoverRolledBack},
		{state.StepPromote, false, state.FailoverRolledBack},
		{state.StepPromote, true, state.FailoverNeedsAttention},
		{state.StepTraffic, true, state.FailoverNeedsAttention},
	} {
		f := state.Failover{Step: tc.step, PromoteCalled: tc.called}
		if got := n.breachState(&f); got != tc.want {
			t.Errorf("step %d, promote called %v: got %s, want %s", tc.step, tc.called, got, tc.want)
		}
	}
}

func TestDropEndedFailovers(t *testing.T) {
	t.Parallel()
	var list []state.Failover
	for i := range maxEndedFailovers + 5 {
		list = append(list, state.Failover{ID: string(rune('A' + i%26)), State: state.FailoverDone})
	}
	list = append(list, state.Failover{ID: "run", State: state.FailoverRunning})
	out := dropEndedFailovers(list)
	ended := 0
	for _, f := range out {
		if f.State != state.FailoverRunning {
			ended++
		}
	}
	if ended != maxEndedFailovers-1 || out[len(out)-1].ID != "run" {
		t.Fatalf("kept %d ended (want %d) and last %q", ended, maxEndedFailovers-1, out[len(out)-1].ID)
	}
}
