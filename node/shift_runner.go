package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/policy"
	"github.com/meridian-edge/meridian/shift"
	"github.com/meridian-edge/meridian/state"
)

// Runner settings.
const (
	// shiftTick is how often running shifts are judged.
	shiftTick = 50 * time.Millisecond
	// shiftRetry is how long a shift waits after its change failed to be
	// saved before it is judged again.
	shiftRetry = time.Second
)

// shiftWindow is what a running shift's current step is measured against.
// It lives in memory only: after a restart a shift's step gets a new
// window, so its hold starts again and its guard sees only new traffic.
type shiftWindow struct {
	step    int
	started time.Time
	baseBy  map[string]shift.Counters // by node: gaining regions' counters when the step began (or the node was first seen)
	wasUp   map[string]bool           // gaining regions serving when the step began
	retryAt time.Time                 // after a failed save, not before
}

// runShifts judges running shifts every shiftTick until ctx ends.
func (n *Node) runShifts(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(shiftTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.tickShifts(ctx)
		}
	}
}

// tickShifts judges every running shift once and acts on the verdicts.
// With no shift running it takes no lock. Until the first round of health
// checks is done (after a restart) region health means nothing yet, so
// nothing is judged.
func (n *Node) tickShifts(ctx context.Context) {
	v := n.View()
	if v == nil || !hasRunning(v.State.Shifts) || !n.health.Ready() {
		if n.members != nil && v != nil {
			n.runnableShifts(ctx, v.State.Shifts) // releases the locks of ended shifts
		}
		return
	}
	mine := n.runnableShifts(ctx, v.State.Shifts)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.store == nil {
		return
	}
	live := map[string]bool{}
	for _, sh := range n.st.Shifts { // n.st is replaced, not edited, by changes
		if sh.State != state.ShiftRunning {
			continue
		}
		live[sh.ID] = true
		if !mine[sh.ID] {
			delete(n.shifts.windows, sh.ID) // another node runs it
			continue
		}
		n.tickShiftLocked(sh)
	}
	for id := range n.shifts.windows {
		if !live[id] {
			delete(n.shifts.windows, id)
		}
	}
}

func hasRunning(list []state.Shift) bool {
	for i := range list {
		if list[i].State == state.ShiftRunning {
			return true
		}
	}
	return false
}

// tickShiftLocked judges one running shift. n.mu must be held.
func (n *Node) tickShiftLocked(sh state.Shift) {
	now := n.now()
	v := n.view.Load()
	j := v.Policy.Service(sh.Service)
	if j < 0 || !slices.Contains(v.Config.Services[j].Regions, sh.Region) {
		n.abandonShiftLocked(&sh, j < 0)
		return
	}
	w := n.shifts.windows[sh.ID]
	if w == nil || w.step != sh.Step {
		w = n.newWindowLocked(&sh, now)
		n.shifts.windows[sh.ID] = w
	}
	if now.Before(w.retryAt) {
		return
	}
	verdict := n.judgeLocked(v, &v.Config.Services[j], &sh, w, now)
	var err error
	switch shift.Next(&sh, verdict) {
	case shift.Hold:
		return
	case shift.Step:
		err = n.advanceShiftLocked(&sh, verdict, now)
	case shift.Done:
		_, err = n.endShiftLocked(&sh, false,
			state.AuditEntry{Token: sh.Token, Action: "shift.done", Reason: stepNote(&sh, verdict.Reason)},
			func(p *state.Shift, now time.Time) {
				shift.Finish(p, now, fmt.Sprintf("all %d steps held; last: %s", len(p.Steps), verdict.Reason))
			})
		if err == nil {
			n.log.Info("shift done", "shift", sh.ID, "service", sh.Service, "region", sh.Region, "dial", shift.Dial(&sh))
		}
	case shift.RollBack:
		_, err = n.endShiftLocked(&sh, true,
			state.AuditEntry{Token: sh.Token, Action: "shift.rollback", Reason: stepNote(&sh, verdict.Reason)},
			func(p *state.Shift, now time.Time) {
				shift.Rollback(p, now, fmt.Sprintf("step %d/%d: %s", p.Step+1, len(p.Steps), verdict.Reason))
			})
		if err == nil {
			n.shifts.rollbacks.WithLabelValues(sh.Service, sh.Region).Inc()
			n.log.Warn("shift rolled back", "shift", sh.ID, "service", sh.Service, "region", sh.Region,
				"dial", sh.StartDial, "reason", verdict.Reason)
		}
	}
	if err != nil {
		n.log.Error("saving shift progress; retrying", "shift", sh.ID, "err", err)
		if w := n.shifts.windows[sh.ID]; w != nil {
			w.retryAt = now.Add(shiftRetry)
		}
	}
}

// advanceShiftLocked moves a shift to its next step and starts the step's
// window. n.mu must be held.
func (n *Node) advanceShiftLocked(sh *state.Shift, verdict shift.Verdict, now time.Time) error {
	id, target := sh.ID, sh.Service+"/"+sh.Region
	old := shift.Dial(sh)
	next := *sh
	dial, _ := shift.Advance(&next, now)
	err := n.changeLocked(func(s *state.Snapshot) error {
		p := s.Shift(id)
		if p == nil || p.State != state.ShiftRunning || p.Step != sh.Step {
			return fmt.Errorf("shift %s changed meanwhile", id)
		}
		shift.Advance(p, now)
		s.SetDial(sh.Service, sh.Region, dial)
		return nil
	}, state.AuditEntry{Token: sh.Token, Action: "shift.step", Target: target,
		Old: strconv.Itoa(old), New: strconv.Itoa(dial), Reason: stepNote(&next, "previous step "+verdict.Reason)})
	if err != nil {
		return err
	}
	n.shifts.windows[id] = n.newWindowLocked(&next, now)
	n.log.Info("shift step", "shift", id, "service", sh.Service, "region", sh.Region,
		"step", next.Step+1, "of", len(next.Steps), "dial", dial, "guard", verdict.Reason)
	return nil
}

// abandonShiftLocked ends a shift whose service or region a reload
// removed; its dial went with the config. n.mu must be held.
func (n *Node) abandonShiftLocked(sh *state.Shift, serviceGone bool) {
	why := fmt.Sprintf("region %q no longer serves service %q", sh.Region, sh.Service)
	if serviceGone {
		why = fmt.Sprintf("service %q is no longer configured", sh.Service)
	}
	_, err := n.endShiftLocked(sh, false, state.AuditEntry{Token: sh.Token, Action: "shift.abort", Reason: why},
		func(p *state.Shift, now time.Time) { shift.Abort(p, now, why) })
	if err != nil {
		if !errors.Is(err, ErrConflict) {
			n.log.Error("ending a shift whose region is gone", "shift", sh.ID, "err", err)
		}
		return
	}
	n.log.Warn("shift aborted", "shift", sh.ID, "reason", why)
}

// newWindowLocked starts measuring a shift's current step at now, from
// the published view. n.mu must be held.
func (n *Node) newWindowLocked(sh *state.Shift, now time.Time) *shiftWindow {
	w := &shiftWindow{step: sh.Step, started: now, wasUp: map[string]bool{}}
	v := n.view.Load()
	j := v.Policy.Service(sh.Service)
	if j < 0 {
		return w
	}
	cs := &v.Config.Services[j]
	gaining := shift.Gaining(cs.Regions, sh.Region, shift.PrevDial(sh), shift.Dial(sh))
	for _, r := range gaining {
		w.wasUp[r] = n.servingLocked(v, r)
	}
	if cs.Mode == "proxy" {
		w.baseBy = n.guardCounters(cs.Name, gaining)
	}
	return w
}

// judgeLocked judges a shift's current step: the proxied figures and the
// health of the gaining regions for proxy services, their health alone for
// dns services, whose traffic this node does not see.
func (n *Node) judgeLocked(v *View, cs *config.Service, sh *state.Shift, w *shiftWindow, now time.Time) shift.Verdict {
	gaining := shift.Gaining(cs.Regions, sh.Region, shift.PrevDial(sh), shift.Dial(sh))
	elapsed := now.Sub(w.started)
	hs := make([]shift.RegionHealth, 0, len(gaining))
	for _, r := range gaining {
		hs = append(hs, shift.RegionHealth{Name: r, Up: n.servingLocked(v, r), WasUp: w.wasUp[r]})
	}
	if cs.Mode != "proxy" {
		return shift.JudgeHealth(sh.Hold, elapsed, hs)
	}
	return shift.JudgeProxy(sh.Guard, sh.Hold, elapsed, w.window(n.guardCounters(cs.Name, gaining)), hs)
}

// servingLocked reports whether a region may take traffic: up by its
// checks and not forced down, or forced up. Health comes from the checker
// itself rather than the view, which may trail it by a rebuild. n.mu must
// be held (so that config and checker agree).
func (n *Node) servingLocked(v *View, region string) bool {
	i := v.Policy.Region(region)
	if i < 0 {
		return false
	}
	r := &v.Policy.Regions[i]
	up := r.Up
	if hs := n.health.Snapshot(); hs != nil && i < len(hs.Regions) && hs.Regions[i].Name == region {
		up = hs.Regions[i].Up
	}
	return r.Override == policy.ForceUp || (r.Override == policy.Auto && up)
}
