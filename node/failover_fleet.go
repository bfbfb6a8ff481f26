package node

import (
	"context"
	"time"

	"github.com/meridian-edge/meridian/policy"
	"github.com/meridian-edge/meridian/state"
)

// failoverLockKey names the fleet lock of the failover runner: the one
// node that takes the steps of running failovers, ends drills and applies
// the auto failover and failback rules. Like a shift's lock it is bound to
// the holder's registration lease, so it dies with its node and another
// node takes the work over at the step the stored state says.
const failoverLockKey = "failovers"

// failoverLockRecheck is how long a confirmed failover lock is trusted
// before it is confirmed with etcd again.
const failoverLockRecheck = time.Second

// foLock is what this node knows of the fleet's failover lock: that it
// holds it, or which other node does; trusted until then.
type foLock struct {
	held   bool
	holder string // when not held: the live node holding it
	until  time.Time
}

// failoverRunner reports whether this node runs failovers, drills and the
// auto rules now: always for a node alone; in a fleet, when it holds the
// failover lock, which it takes while there is work for a runner (a
// running failover or drill, or a service with an auto rule) and no other
// live node holds it, and releases when there is none. It talks to etcd,
// so it is called without n.mu.
func (n *Node) failoverRunner(ctx context.Context, v *View) bool {
	if n.members == nil {
		return true
	}
	now := n.now()
	n.fo.lockMu.Lock()
	lk := n.fo.lock
	n.fo.lockMu.Unlock()
	if !failoverWork(v) {
		if lk.held {
			n.fo.lockMu.Lock()
			n.fo.lock = foLock{}
			n.fo.lockMu.Unlock()
			if err := n.members.Unlock(ctx, failoverLockKey); err != nil {
				n.log.Warn("releasing the failover lock; it goes with this node's lease", "err", err)
			}
		}
		return false
	}
	if lk.held && now.Before(lk.until) {
		return true
	}
	if !lk.held && lk.holder != "" && now.Before(lk.until) && n.liveMember(lk.holder) {
		return false // asked etcd less than a second ago; its holder is still listed
	}
	held, holder, err := n.members.TryLock(ctx, failoverLockKey)
	n.fo.lockMu.Lock()
	defer n.fo.lockMu.Unlock()
	switch {
	case err == nil && held:
		if !lk.held {
			n.log.Info("running failovers", "running", runningFailoverIDs(v.State.Failovers))
		}
		n.fo.lock = foLock{held: true, until: now.Add(failoverLockRecheck)}
		return true
	case err == nil:
		if lk.held {
			n.log.Info("failovers run on another node now", "node", holder)
		}
		n.fo.lock = foLock{holder: holder, until: now.Add(failoverLockRecheck)}
		return false
	case lk.held:
		n.log.Warn("confirming the failover lock", "err", err)
	}
	n.fo.lock = foLock{}
	return false
}

// liveMember reports whether the fleet's current member list names node.
// A node that dies leaves the list when its lease expires, which is when
// the locks it held go too: the others then ask etcd at once.
func (n *Node) liveMember(node string) bool {
	members, fresh := n.members.Members()
	if !fresh {
		return false
	}
	for i := range members {
		if members[i].Name == node {
			return true
		}
	}
	return false
}

// failoverWork reports whether a runner has anything to do: a running
// failover or drill, or a service whose failover block has an auto rule.
func failoverWork(v *View) bool {
	for i := range v.State.Failovers {
		if v.State.Failovers[i].State == state.FailoverRunning {
			return true
		}
	}
	for i := range v.State.Drills {
		if v.State.Drills[i].State == state.DrillRunning {
			return true
		}
	}
	for i := range v.Config.Services {
		if fc := v.Config.Services[i].Failover; fc != nil && (fc.Auto || fc.Failback == "auto") {
			return true
		}
	}
	return false
}

func runningFailoverIDs(list []state.Failover) []string {
	var out []string
	for i := range list {
		if list[i].State == state.FailoverRunning {
			out = append(out, list[i].ID)
		}
	}
	return out
}

// regionsUp is each region's health as the failover runbook judges it
// (config order): under fleet.health quorum the fleet's verdict, as DNS
// answers use it, so that the impact time and the auto rules are the
// fleet's and every node keeps the same clocks (the runner's role can move
// to any of them); otherwise, and while the fleet's view is not at hand,
// this node's own. An override wins either way.
func (n *Node) regionsUp(v *View) []bool {
	quorum := v.Config.Fleet.Health == "quorum" && len(v.Fleet) == len(v.Policy.Regions)
	out := make([]bool, len(v.Policy.Regions))
	for i := range v.Policy.Regions {
		r := &v.Policy.Regions[i]
		up := r.Up
		if quorum {
			up = v.Fleet[i].Up
		}
		out[i] = r.Override == policy.ForceUp || (r.Override == policy.Auto && up)
	}
	return out
}

// primaryUpLocked reports whether a writes primary (or a failover's
// target, when picked by the auto rule) counts as up for the runbook: the
// fleet's verdict under fleet.health quorum, else this node's checks.
// n.mu must be held.
func (n *Node) primaryUpLocked(v *View, region string) bool {
	i := v.Policy.Region(region)
	if i < 0 {
		return false
	}
	if v.Config.Fleet.Health == "quorum" && len(v.Fleet) == len(v.Policy.Regions) {
		return n.regionsUp(v)[i]
	}
	return n.servingLocked(v, region)
}

// forgetEndedDrills drops the watches of drills that ended: on a node that
// is not the runner, those of drills started through its API, which the
// runner ended.
func (n *Node) forgetEndedDrills() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id := range n.fo.drills {
		if dr := n.st.Drill(id); dr == nil || dr.State != state.DrillRunning {
			delete(n.fo.drills, id)
		}
	}
}
