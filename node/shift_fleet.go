package node

import (
	"context"
	"time"

	"github.com/meridian-edge/meridian/shift"
	"github.com/meridian-edge/meridian/state"
)

// shiftLockRecheck is how long a confirmed shift lock is trusted before
// it is confirmed with etcd again.
const shiftLockRecheck = time.Second

// shiftLockKey names the fleet lock of one shift.
func shiftLockKey(id string) string { return "shift/" + id }

// runnableShifts returns the ids of the running shifts this node runs: all
// of them for a node alone; in a fleet, those whose lock it holds (taking
// the lock of a shift no live node holds, such as one whose runner died).
// It talks to etcd, so it is called without n.mu.
func (n *Node) runnableShifts(ctx context.Context, list []state.Shift) map[string]bool {
	out := map[string]bool{}
	now := n.now()
	for i := range list {
		sh := &list[i]
		if sh.State != state.ShiftRunning {
			continue
		}
		if n.members == nil {
			out[sh.ID] = true
			continue
		}
		n.shifts.lockMu.Lock()
		until, ok := n.shifts.locks[sh.ID]
		n.shifts.lockMu.Unlock()
		if ok && now.Before(until) {
			out[sh.ID] = true
			continue
		}
		held, holder, err := n.members.TryLock(ctx, shiftLockKey(sh.ID))
		n.shifts.lockMu.Lock()
		switch {
		case err == nil && held:
			if !ok {
				n.log.Info("running shift", "shift", sh.ID, "service", sh.Service, "region", sh.Region, "step", sh.Step+1, "of", len(sh.Steps))
			}
			n.shifts.locks[sh.ID] = now.Add(shiftLockRecheck)
			out[sh.ID] = true
		default:
			if ok && err == nil {
				n.log.Info("shift runs on another node now", "shift", sh.ID, "node", holder)
			}
			delete(n.shifts.locks, sh.ID)
		}
		n.shifts.lockMu.Unlock()
	}
	// Locks of shifts that ended are released.
	n.shifts.lockMu.Lock()
	var ended []string
	for id := range n.shifts.locks {
		if !runningID(list, id) {
			ended = append(ended, id)
			delete(n.shifts.locks, id)
		}
	}
	n.shifts.lockMu.Unlock()
	for _, id := range ended {
		if err := n.members.Unlock(ctx, shiftLockKey(id)); err != nil {
			n.log.Warn("releasing a shift lock; it goes with this node's lease", "shift", id, "err", err)
		}
	}
	return out
}

func runningID(list []state.Shift, id string) bool {
	for i := range list {
		if list[i].ID == id && list[i].State == state.ShiftRunning {
			return true
		}
	}
	return false
}

// guardCounters returns, by node, the cumulative proxy figures of service
// summed over regions: this node's own, read now, and every other live
// node's as it published them (each second). A node alone has only its own.
func (n *Node) guardCounters(service string, regions []string) map[string]shift.Counters {
	self := n.cfg.Node.Name
	out := map[string]shift.Counters{}
	var own shift.Counters
	for _, r := range regions {
		own.Add(n.RegionStats(service, r))
	}
	out[self] = own
	if n.members == nil {
		return out
	}
	members, _ := n.members.Members()
	for _, m := range members {
		if m.Name == self {
			continue
		}
		var c shift.Counters
		for _, r := range regions {
			c.Add(shift.Counters(m.Counters[service+"/"+r]))
		}
		out[m.Name] = c
	}
	return out
}

// window sums, over the nodes, what each counted since the window began.
// A node first seen now starts counting now; a node gone stops counting.
func (w *shiftWindow) window(cur map[string]shift.Counters) shift.Window {
	if w.baseBy == nil {
		w.baseBy = map[string]shift.Counters{}
	}
	var total shift.Counters
	for name, c := range cur {
		base, ok := w.baseBy[name]
		if !ok {
			w.baseBy[name] = c
			continue
		}
		total.Add(shift.Counters(c.Sub(base)))
	}
	return shift.Window(total)
}
