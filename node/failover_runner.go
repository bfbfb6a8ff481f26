package node

import (
	"context"
	"fmt"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/replica"
	"github.com/meridian-edge/meridian/shift"
	"github.com/meridian-edge/meridian/state"
)

// failoverTick is how often running failovers, drills and the auto
// failover and failback rules are looked at.
const failoverTick = 50 * time.Millisecond

// The traffic step's dials: the target's share of the reads.
var (
	trafficRaise = []int{10, 50, 100} // the target's dial, when it is below 100
	trafficLower = []int{90, 50, 0}   // else the old primary's dial
)

// runFailovers works on running failovers and drills every failoverTick
// until ctx ends. Everything it needs to go on is in the stored state, so
// a restarted node resumes a failover at the step it reached.
func (n *Node) runFailovers(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(failoverTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.tickFailovers(ctx)
		}
	}
}

// tickFailovers takes one look at every running failover and drill and at
// the auto rules. Until the first round of health checks is done nothing
// is judged.
func (n *Node) tickFailovers(ctx context.Context) {
	if !n.health.Ready() {
		return
	}
	if v := n.View(); v == nil || !n.failoverRunner(ctx, v) {
		n.forgetEndedDrills() // another node of the fleet runs them
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.store == nil {
		return
	}
	v := n.view.Load()
	for _, f := range n.st.Failovers { // n.st is replaced, not edited, by changes
		// Steps that need no wait follow each other in the same tick.
		for range state.StepDone {
			if f.State != state.FailoverRunning {
				break
			}
			step := f.Step
			n.stepFailoverLocked(ctx, v, f)
			p := n.st.Failover(f.ID)
			if p == nil || p.Step == step {
				break
			}
			f, v = *p, n.view.Load()
		}
	}
	n.autoFailoverLocked(n.view.Load())
	n.tickDrillsLocked(n.view.Load())
}

// trackRegionsLocked notes when each region stopped or started serving.
// n.mu must be held.
func (n *Node) trackRegionsLocked(v *View) {
	if n.fo == nil || n.health == nil || !n.health.Ready() {
		return
	}
	now := n.now()
	ups := n.regionsUp(v)
	for i := range v.Policy.Regions {
		r := &v.Policy.Regions[i]
		if ups[i] {
			delete(n.fo.downSince, r.Name)
			if _, ok := n.fo.upSince[r.Name]; !ok {
				n.fo.upSince[r.Name] = now
			}
		} else {
			delete(n.fo.upSince, r.Name)
			if _, ok := n.fo.downSince[r.Name]; !ok {
				n.fo.downSince[r.Name] = now
			}
		}
	}
}

// stepFailoverLocked takes the next step of a running failover when it
// can be taken. n.mu must be held.
func (n *Node) stepFailoverLocked(ctx context.Context, v *View, f state.Failover) {
	now := n.now()
	j := v.Policy.Service(f.Service)
	if j < 0 || !contains(v.Config.Services[j].Regions, f.To) {
		n.endFailoverLocked(&f, n.breachState(&f), "the service or its target region is no longer configured")
		return
	}
	cs := &v.Config.Services[j]
	fc := failoverConfig(cs)
	var err error
	switch f.Step {
	case state.StepReadiness:
		if !n.servingLocked(v, f.To) {
			n.endFailoverLocked(&f, state.FailoverRolledBack, "target "+f.To+" is not up; nothing moved")
			return
		}
		err = n.completeStepLocked(&f, state.StepReadiness, "target "+f.To+" is up", func(p *state.Failover) {
			p.Step, p.LagSince = state.StepLag, now
		})
	case state.StepLag:
		err = n.lagStepLocked(v, &f, fc, now)
	case state.StepPromote:
		err = n.promoteStepLocked(ctx, v, &f)
	case state.StepWrites:
		err = n.completeStepLocked(&f, state.StepWrites, f.To+" is the writes primary (was "+f.From+")", func(p *state.Failover) {
			p.Step = state.StepTraffic
		}, func(s *state.Snapshot) { s.SetWriter(f.Service, f.To) })
	case state.StepTraffic:
		err = n.trafficStepLocked(cs, fc, &f, now)
	}
	if err != nil {
		n.log.Error("saving failover progress; retrying", "failover", f.ID, "err", err)
	}
}

// breachState is how a failover stops on a problem: rolled_back before
// the promotion, needs_attention once the promote hook was called.
func (n *Node) breachState(f *state.Failover) string {
	if f.Step < state.StepPromote || (f.Step == state.StepPromote && !f.PromoteCalled) {
		return state.FailoverRolledBack
	}
	return state.FailoverNeedsAttention
}

// lagStepLocked is step 4: the target's replica lag within the RPO,
// waiting up to max_wait. While it waits, the guard watches the target: a
// target that goes down stops the failover with nothing moved.
func (n *Node) lagStepLocked(v *View, f *state.Failover, fc config.Failover, now time.Time) error {
	if !n.servingLocked(v, f.To) {
		n.endFailoverLocked(f, state.FailoverRolledBack,
			"guard: target "+f.To+" went down while its replica lag was awaited; nothing moved")
		return nil
	}
	lag := n.fo.replicas.Lag(f.To)
	rpo := fc.RPO.D()
	desc := "unknown (" + lag.Error + ")"
	if lag.Known {
		desc = fmt.Sprintf("%gs", lag.Seconds)
	}
	next := func(p *state.Failover) { p.Step = state.StepPromote }
	switch {
	case lag.Known && lag.Seconds <= rpo.Seconds():
		return n.completeStepLocked(f, state.StepLag, fmt.Sprintf("replica lag of %s is %s, within rpo %s", f.To, desc, rpo), next)
	case f.AcceptDataLoss:
		return n.completeStepLocked(f, state.StepLag,
			fmt.Sprintf("replica lag of %s is %s, over rpo %s or unknown: data loss accepted", f.To, desc, rpo), next)
	case now.Sub(f.LagSince) >= fc.MaxWait.D():
		n.endFailoverLocked(f, state.FailoverBlockedRPO, fmt.Sprintf(
			"replica lag of %s is %s after max_wait %s, over rpo %s; nothing moved (accept_data_loss to promote anyway)",
			f.To, desc, fc.MaxWait, rpo))
	}
	return nil
}

// promoteStepLocked is step 5: the promote hook, called once. Its call is
// stored before it is made, so that neither a restart nor the node taking
// over from a dead runner calls it again; a runner that stopped while it
// was in flight leaves the failover needing attention.
func (n *Node) promoteStepLocked(ctx context.Context, v *View, f *state.Failover) error {
	if n.fo.promoting[f.ID] {
		return nil
	}
	if f.PromoteCalled {
		n.endFailoverLocked(f, state.FailoverNeedsAttention, "the promote hook of "+f.To+
			" was called by a runner that stopped before its answer was saved (a restart, or a fleet node that died);"+
			" check its database, then finish with a new failover")
		return nil
	}
	lag := n.fo.replicas.Lag(f.To)
	rpo := -1.0
	if lag.Known {
		rpo = lag.Seconds
	}
	hook := n.promoteOf(v, f.To)
	if hook == nil {
		return n.completeStepLocked(f, state.StepPromote, "no promote hook for "+f.To+"; nothing to call",
			func(p *state.Failover) { p.Step, p.RPOSeconds = state.StepWrites, &rpo })
	}
	id := f.ID
	now := n.now()
	// The call is marked in a change that holds only while no node marked
	// it before: of two nodes that both think they run the failover (one
	// taking over from another it saw die), one alone calls the hook.
	err := n.changeLocked(func(s *state.Snapshot) error {
		p := s.Failover(id)
		if p == nil || p.State != state.FailoverRunning || p.Step != state.StepPromote || p.PromoteCalled {
			return fmt.Errorf("failover %s changed meanwhile", id)
		}
		p.PromoteCalled, p.RPOSeconds, p.Updated = true, &rpo, now
		return nil
	},
		state.AuditEntry{Token: f.Token, Action: "failover.promote", Target: f.Service + " " + f.From + "→" + f.To,
			Old: "failover " + id, New: "POST " + hook.URL, Reason: fmt.Sprintf("rpo (lag at promotion) %s", rpoText(rpo))})
	if err != nil {
		return err
	}
	n.fo.promoting[id] = true
	body := fmt.Sprintf(`{"service":%q,"region":%q,"from":%q,"failover":%q}`, f.Service, f.To, f.From, id)
	url, timeout := hook.URL, hook.Timeout.D()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		start := time.Now()
		err := replica.Promote(ctx, n.fo.client, url, timeout, body)
		n.promoteDone(id, err, time.Since(start))
	}()
	return nil
}

func rpoText(s float64) string {
	if s < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%gs", s)
}

// promoteDone records the promote hook's answer.
func (n *Node) promoteDone(id string, err error, took time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.fo.promoting, id)
	if n.store == nil {
		return
	}
	p := n.st.Failover(id)
	if p == nil || p.State != state.FailoverRunning {
		return
	}
	f := *p
	if err != nil {
		if uerr := n.updateFailoverLocked(id, func(p *state.Failover) { p.PromoteResult = err.Error() }); uerr != nil {
			n.log.Error("saving the promote hook's answer", "failover", id, "err", uerr)
		}
		n.endFailoverLocked(&f, state.FailoverNeedsAttention, "promote hook of "+f.To+" failed: "+err.Error())
		return
	}
	if err := n.completeStepLocked(&f, state.StepPromote, fmt.Sprintf("promote hook of %s answered 2xx in %s", f.To, took.Round(time.Millisecond)),
		func(p *state.Failover) { p.Step, p.PromoteResult = state.StepWrites, "ok" }); err != nil {
		// The hook must not be called again: stop here for an operator.
		n.log.Error("saving the promotion", "failover", id, "err", err)
	}
}

// trafficStepLocked is step 7: the reads move to the target in steps under
// the shift guard. The shift machinery runs it; the failover waits for it
// to end and then takes step 8.
func (n *Node) trafficStepLocked(cs *config.Service, fc config.Failover, f *state.Failover, now time.Time) error {
	if f.Shift == "" {
		region, steps := n.trafficSteps(cs, f.From, f.To)
		if len(steps) == 0 {
			note := "reads were already away from " + f.From + " and on " + f.To
			return n.finishFailoverLocked(f, note, now)
		}
		return n.startTrafficShiftLocked(cs, fc, f, region, steps, now)
	}
	sh := n.st.Shift(f.Shift)
	switch {
	case sh == nil:
		n.endFailoverLocked(f, state.FailoverNeedsAttention, "the traffic step's shift "+f.Shift+" is gone")
	case sh.State == state.ShiftRunning:
	case sh.State == state.ShiftDone:
		return n.finishFailoverLocked(f, "reads moved: "+describeShift(sh)+"; "+sh.Reason, now)
	default:
		n.endFailoverLocked(f, state.FailoverNeedsAttention, fmt.Sprintf(
			"the traffic step stopped (shift %s %s: %s); the writer has moved to %s", sh.ID, sh.State, sh.Reason, f.To))
	}
	return nil
}

// trafficSteps says which dial the traffic step walks: the target's up
// through 10, 50, 100 when it is below 100, else the old primary's down
// through 90, 50, 0. Steps already passed are left out.
func (n *Node) trafficSteps(cs *config.Service, from, to string) (string, []int) {
	var steps []int
	if d := n.dial(cs, to); d < 100 {
		for _, s := range trafficRaise {
			if s > d {
				steps = append(steps, s)
			}
		}
		return to, steps
	}
	d := n.dial(cs, from)
	for _, s := range trafficLower {
		if s < d {
			steps = append(steps, s)
		}
	}
	return from, steps
}

// trafficPlan describes the traffic step for a dry run.
func (n *Node) trafficPlan(cs *config.Service, from, to string, hold time.Duration) string {
	region, steps := n.trafficSteps(cs, from, to)
	if len(steps) == 0 {
		return "reads are already on " + to
	}
	return fmt.Sprintf("would walk the dial of %s through %v, holding %s each under the guard", region, steps, hold)
}

// startTrafficShiftLocked starts the traffic step's shift and records it
// in the failover, in one change. The freeze does not apply to it.
func (n *Node) startTrafficShiftLocked(cs *config.Service, fc config.Failover, f *state.Failover, region string, steps []int, now time.Time) error {
	if sh := runningShift(n.st.Shifts, cs.Name, region); sh != nil {
		n.endFailoverLocked(f, state.FailoverNeedsAttention, "shift "+sh.ID+" already runs on "+cs.Name+"/"+region+"; the writer has moved to "+f.To)
		return nil
	}
	id, err := newShiftID(n.st)
	if err != nil {
		return err
	}
	hold := fc.Hold.D()
	g := state.Guard{MaxErrorRatio: fc.Guard.MaxErrorRatio, MaxP95: fc.Guard.MaxP95.D(), MaxWait: hold}
	sh := state.Shift{
		ID: id, Service: cs.Name, Region: region, Steps: steps, Hold: hold, Guard: shift.WithDefaults(g, hold),
		State: state.ShiftRunning, StartDial: n.dial(cs, region),
		StepStarted: now, Created: now, Updated: now, Token: f.Token,
	}
	target := cs.Name + "/" + region
	// The shift and the failover that waits for it are stored together.
	err = n.changeLocked(func(s *state.Snapshot) error {
		p := s.Failover(f.ID)
		if p == nil || p.State != state.FailoverRunning || p.Shift != "" {
			return fmt.Errorf("failover %s changed meanwhile", f.ID)
		}
		p.Shift, p.Updated = id, now
		s.Shifts = append(dropEnded(s.Shifts, maxEndedShifts), sh)
		s.SetDial(cs.Name, region, steps[0])
		return nil
	},
		state.AuditEntry{Token: f.Token, Action: "shift.start", Target: target,
			Old: fmt.Sprint(sh.StartDial), New: describeShift(&sh), Reason: "failover " + f.ID + " step 7 traffic"},
		state.AuditEntry{Token: f.Token, Action: "shift.step", Target: target,
			Old: fmt.Sprint(sh.StartDial), New: fmt.Sprint(steps[0]), Reason: stepNote(&sh, "started")})
	if err != nil {
		return err
	}
	n.shifts.windows[id] = n.newWindowLocked(&sh, now)
	n.log.Info("failover traffic step", "failover", f.ID, "shift", id, "region", region, "steps", steps, "hold", hold)
	return nil
}

// finishFailoverLocked takes steps 7 and 8: RTO is now minus the impact
// time.
func (n *Node) finishFailoverLocked(f *state.Failover, note string, now time.Time) error {
	rto := now.Sub(f.ImpactAt).Seconds()
	s7 := state.FailoverStep{Step: state.StepTraffic, Name: stepName(state.StepTraffic), Time: now, Note: note}
	s8 := state.FailoverStep{Step: state.StepDone, Name: stepName(state.StepDone), Time: now,
		Note: fmt.Sprintf("rto %.3fs, rpo %s", rto, rpoText(deref(f.RPOSeconds)))}
	outcome := fmt.Sprintf("%s is the writes primary of %s; rto %.3fs, rpo %s", f.To, f.Service, rto, rpoText(deref(f.RPOSeconds)))
	err := n.updateFailoverLocked(f.ID, func(p *state.Failover) {
		p.Steps = append(p.Steps, s7, s8)
		p.Step, p.State, p.Ended, p.RTOSeconds, p.Outcome = state.StepDone, state.FailoverDone, now, &rto, outcome
	}, stepAudit(f, s7), stepAudit(f, s8),
		state.AuditEntry{Token: f.Token, Action: "failover.done", Target: f.Service + " " + f.From + "→" + f.To,
			Old: f.From, New: f.To, Reason: outcome})
	if err != nil {
		return err
	}
	n.log.Info("failover done", "failover", f.ID, "service", f.Service, "from", f.From, "to", f.To,
		"rto_seconds", rto, "rpo_seconds", deref(f.RPOSeconds))
	return nil
}

func deref(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// completeStepLocked records step as done with its note, applies next to
// the stored failover and more to the state, in one change with the
// step's audit entry.
func (n *Node) completeStepLocked(f *state.Failover, step int, note string, next func(*state.Failover), more ...func(*state.Snapshot)) error {
	now := n.now()
	st := state.FailoverStep{Step: step, Name: stepName(step), Time: now, Note: note}
	err := n.changeLocked(func(s *state.Snapshot) error {
		p := s.Failover(f.ID)
		if p == nil || p.State != state.FailoverRunning || p.Step != f.Step {
			return fmt.Errorf("failover %s changed meanwhile", f.ID)
		}
		p.Steps = append(p.Steps, st)
		p.Updated = now
		next(p)
		for _, fn := range more {
			fn(s)
		}
		return nil
	}, stepAudit(f, st))
	if err != nil {
		return err
	}
	n.log.Info("failover step", "failover", f.ID, "service", f.Service, "step", step, "name", st.Name, "note", note)
	return nil
}

// updateFailoverLocked edits a running failover in one change.
func (n *Node) updateFailoverLocked(id string, fn func(*state.Failover), audit ...state.AuditEntry) error {
	now := n.now()
	return n.changeLocked(func(s *state.Snapshot) error {
		p := s.Failover(id)
		if p == nil || p.State != state.FailoverRunning {
			return fmt.Errorf("failover %s is no longer running", id)
		}
		fn(p)
		p.Updated = now
		return nil
	}, audit...)
}

// endFailoverLocked stops a running failover in state with outcome. A
// failover that needs attention is logged as an error: the writer has
// moved and the reads have not all followed.
func (n *Node) endFailoverLocked(f *state.Failover, st, outcome string) {
	now := n.now()
	err := n.updateFailoverLocked(f.ID, func(p *state.Failover) {
		p.State, p.Outcome, p.Ended = st, outcome, now
	}, state.AuditEntry{Token: f.Token, Action: "failover." + st, Target: f.Service + " " + f.From + "→" + f.To,
		Old: fmt.Sprintf("step %d %s", f.Step, stepName(f.Step)), New: st, Reason: outcome})
	if err != nil {
		n.log.Error("ending a failover", "failover", f.ID, "err", err)
		return
	}
	if st == state.FailoverNeedsAttention {
		n.log.Error("failover needs attention", "failover", f.ID, "service", f.Service, "from", f.From, "to", f.To, "reason", outcome)
		return
	}
	n.log.Warn("failover stopped", "failover", f.ID, "service", f.Service, "state", st, "reason", outcome)
}

// autoFailoverLocked starts failovers the config asks for: failover.auto
// when the writes primary has been down `after`, failback auto when the
// configured primary has been up `hold_down`. n.mu must be held.
func (n *Node) autoFailoverLocked(v *View) {
	now := n.now()
	for j := range v.Config.Services {
		cs := &v.Config.Services[j]
		fc := cs.Failover
		if fc == nil || runningFailover(n.st.Failovers, cs.Name) != nil || runningShiftOf(n.st.Shifts, cs.Name) {
			continue
		}
		cur := n.writer(cs)
		if last := lastEnded(n.st.Failovers, cs.Name); last != nil && now.Sub(last.Ended) < fc.After.D() {
			continue // a failover just ended: give health a moment before the rules look again
		}
		if since, down := n.fo.downSince[cur]; fc.Auto && down && now.Sub(since) >= fc.After.D() {
			to := ""
			for _, r := range cs.Regions {
				if r != cur && n.primaryUpLocked(v, r) {
					to = r
					break
				}
			}
			if to == "" {
				continue
			}
			n.startAuto(cs.Name, to, "failover", fmt.Sprintf("writes primary %s down for %s (failover.after %s)",
				cur, now.Sub(since).Round(time.Millisecond), fc.After))
			continue
		}
		home := cs.Primary()
		if since, up := n.fo.upSince[home]; fc.Failback == "auto" && cur != home && up && now.Sub(since) >= fc.HoldDown.D() {
			n.startAuto(cs.Name, home, "failback", fmt.Sprintf("configured primary %s up for %s (failover.hold_down %s)",
				home, now.Sub(since).Round(time.Millisecond), fc.HoldDown))
		}
	}
}

func (n *Node) startAuto(service, to, kind, reason string) {
	f, err := n.startFailoverLocked(service, FailoverRequest{To: to, Force: kind == "failback"},
		Actor{Token: "meridian", Reason: "auto " + kind + ": " + reason}, kind)
	if err != nil {
		n.log.Warn("auto "+kind+" not started", "service", service, "to", to, "err", err)
		return
	}
	n.log.Warn("auto "+kind+" started", "failover", f.ID, "service", service, "from", f.From, "to", to, "reason", reason)
}

func lastEnded(list []state.Failover, service string) *state.Failover {
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Service == service && list[i].State != state.FailoverRunning && list[i].State != state.FailoverPlanned {
			return &list[i]
		}
	}
	return nil
}

func runningShiftOf(list []state.Shift, service string) bool {
	for i := range list {
		if list[i].State == state.ShiftRunning && list[i].Service == service {
			return true
		}
	}
	return false
}
