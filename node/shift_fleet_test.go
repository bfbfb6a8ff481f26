package node

import (
	"testing"

	"github.com/meridian-edge/meridian/shift"
)

// TestShiftWindowSumsNodes: the guard's window is the sum over the fleet's
// nodes of what each counted since the step began; a node that joins
// counts from when it is first seen, one that leaves stops counting, and a
// node that restarted (counters back to zero) counts from zero.
func TestShiftWindowSumsNodes(t *testing.T) {
	t.Parallel()
	c := func(req, errs uint64) shift.Counters { return shift.Counters{Requests: req, Errors: errs} }
	w := &shiftWindow{baseBy: map[string]shift.Counters{"a": c(100, 1), "b": c(50, 0)}}
	steps := []struct {
		name      string
		cur       map[string]shift.Counters
		req, errs uint64
	}{
		{"both count", map[string]shift.Counters{"a": c(130, 2), "b": c(70, 3)}, 50, 4},
		{"c joins: not counted yet", map[string]shift.Counters{"a": c(130, 2), "b": c(70, 3), "c": c(1000, 10)}, 50, 4},
		{"c counts from then", map[string]shift.Counters{"a": c(130, 2), "b": c(70, 3), "c": c(1010, 11)}, 60, 5},
		{"b gone", map[string]shift.Counters{"a": c(140, 2), "c": c(1010, 11)}, 50, 2},
		{"a restarted", map[string]shift.Counters{"a": c(5, 1), "c": c(1010, 11)}, 15, 2},
	}
	for _, s := range steps {
		got := w.window(s.cur)
		if got.Requests != s.req || got.Errors != s.errs {
			t.Errorf("%s: got %d requests %d errors, want %d %d", s.name, got.Requests, got.Errors, s.req, s.errs)
		}
	}
}
