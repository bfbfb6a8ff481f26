package node

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/replica"
	"github.com/meridian-edge/meridian/state"
)

// maxEndedFailovers is how many ended failovers (and drills) the state
// keeps; the oldest are dropped when a new one starts.
const maxEndedFailovers = 50

// FailoverRequest is a failover an operator asks for (SPEC section 10).
type FailoverRequest struct {
	To             string
	Force          bool
	AcceptDataLoss bool
	DryRun         bool
}

// stepNames are the runbook's steps by number.
var stepNames = [...]string{
	state.StepImpact:    "impact",
	state.StepFreeze:    "freeze",
	state.StepReadiness: "readiness",
	state.StepLag:       "lag",
	state.StepPromote:   "promote",
	state.StepWrites:    "writes",
	state.StepTraffic:   "traffic",
	state.StepDone:      "done",
}

// failovers is the runner's in-memory side: when each region last went
// down and came up (for impact times, auto failover and failback), the
// replica lags, promote calls in flight and the metrics.
type failovers struct {
	replicas  *replica.Poller
	client    *http.Client
	downSince map[string]time.Time // guarded by Node.mu
	upSince   map[string]time.Time // guarded by Node.mu
	promoting map[string]bool      // failover id → promote hook in flight; guarded by Node.mu
	drills    map[string]*drillWatch

	lockMu sync.Mutex // guards lock
	lock   foLock     // fleet: this node's hold on the failover runner's lock
}

var (
	failoverRTODesc = prometheus.NewDesc("meridian_failover_rto_seconds",
		"Recovery time of the service's last completed failover: done minus the impact time.",
		[]string{"service"}, nil)
	failoverRPODesc = prometheus.NewDesc("meridian_failover_rpo_seconds",
		"Replica lag of the target at the promotion of the service's last completed failover.",
		[]string{"service"}, nil)
)

func newFailovers(n *Node) *failovers {
	f := &failovers{
		client:    &http.Client{},
		downSince: map[string]time.Time{},
		upSince:   map[string]time.Time{},
		promoting: map[string]bool{},
		drills:    map[string]*drillWatch{},
	}
	f.replicas = replica.New(n.cfg.Regions, replica.Options{Logger: n.opts.Logger, Now: n.now, Client: f.client, Registerer: n.reg})
	n.reg.MustRegister(&failoverCollector{n: n})
	return f
}

// failoverCollector exports the RTO and RPO of each service's last
// completed failover from the published view.
type failoverCollector struct{ n *Node }

func (c *failoverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- failoverRTODesc
	ch <- failoverRPODesc
}

func (c *failoverCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.n.View()
	if v == nil {
		return
	}
	for _, s := range v.Config.Services {
		f := lastDone(v.State.Failovers, s.Name)
		if f == nil {
			continue
		}
		if f.RTOSeconds != nil {
			ch <- prometheus.MustNewConstMetric(failoverRTODesc, prometheus.GaugeValue, *f.RTOSeconds, s.Name)
		}
		if f.RPOSeconds != nil && *f.RPOSeconds >= 0 {
			ch <- prometheus.MustNewConstMetric(failoverRPODesc, prometheus.GaugeValue, *f.RPOSeconds, s.Name)
		}
	}
}

func lastDone(list []state.Failover, service string) *state.Failover {
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Service == service && list[i].State == state.FailoverDone {
			return &list[i]
		}
	}
	return nil
}

// runningFailover returns the running failover of service, or nil.
func runningFailover(list []state.Failover, service string) *state.Failover {
	for i := range list {
		if f := &list[i]; f.State == state.FailoverRunning && f.Service == service {
			return f
		}
	}
	return nil
}

// freezeLocked refuses a change of a service a failover has frozen.
// n.mu must be held.
func (n *Node) freezeLocked(service string) error {
	if f := runningFailover(n.st.Failovers, service); f != nil {
		return errorf(ErrConflict, "service %q is frozen by failover %s (%s → %s, step %d %s) until it ends",
			service, f.ID, f.From, f.To, f.Step, stepName(f.Step))
	}
	return nil
}

func stepName(step int) string {
	if step > 0 && step < len(stepNames) {
		return stepNames[step]
	}
	return "?"
}

// writer is a service's writes primary: the stored one while it is still
// a region of the service, else the configured one.
//
// Everything a failover needs to go on lives in the stored state, and the
// runner looks at it afresh on every tick: whichever node holds the
// state's runner role (every node of a file backend; one per fleet behind
// a shared store) resumes a failover at the step it reached.
func (n *Node) writer(cs *config.Service) string {
	if w, ok := n.st.Writers[cs.Name]; ok && contains(cs.Regions, w) {
		return w
	}
	return cs.Primary()
}

// StartFailover starts the runbook for a service: steps 1 (impact) and 2
// (freeze) are taken at once, the runner takes the rest. A dry run takes
// steps 1 to 4 as they stand now, changes nothing and answers with the
// plan.
func (n *Node) StartFailover(service string, req FailoverRequest, who Actor) (state.Failover, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.startFailoverLocked(service, req, who, "")
}

func (n *Node) startFailoverLocked(service string, req FailoverRequest, who Actor, auto string) (state.Failover, error) {
	v := n.view.Load()
	j := v.Policy.Service(service)
	if j < 0 {
		return state.Failover{}, errorf(ErrNotFound, "unknown service %q", service)
	}
	cs := &v.Config.Services[j]
	from := n.writer(cs)
	switch {
	case req.To == "":
		return state.Failover{}, errorf(ErrInvalid, "a failover needs a target region (to)")
	case !contains(cs.Regions, req.To):
		return state.Failover{}, errorf(ErrInvalid, "region %q is not a region of service %q", req.To, service)
	case req.To == from:
		return state.Failover{}, errorf(ErrConflict, "region %q is already the writes primary of %q", req.To, service)
	case req.Force && strings.TrimSpace(who.Reason) == "" && auto == "":
		return state.Failover{}, errorf(ErrInvalid, "a forced failover needs a reason")
	}
	if !req.DryRun {
		if err := n.freezeLocked(service); err != nil {
			return state.Failover{}, err
		}
		for _, sh := range n.st.Shifts {
			if sh.State == state.ShiftRunning && sh.Service == service {
				return state.Failover{}, errorf(ErrConflict, "shift %s runs on %s/%s; abort it before a failover", sh.ID, service, sh.Region)
			}
		}
	}
	now := n.now()
	fc := failoverConfig(cs)
	f := state.Failover{
		Service: service, From: from, To: req.To,
		Force: req.Force, AcceptDataLoss: req.AcceptDataLoss, DryRun: req.DryRun, Auto: auto,
		State: state.FailoverRunning, Hold: fc.Hold.D(),
		Created: now, Updated: now, Reason: who.Reason, Token: who.Token,
	}
	// Step 1: impact.
	down, since := !n.primaryUpLocked(v, from), n.fo.downSince[from]
	switch {
	case down:
		f.ImpactAt = since
		if since.IsZero() {
			f.ImpactAt = now
		}
		f.Steps = append(f.Steps, state.FailoverStep{Step: state.StepImpact, Name: "impact", Time: now,
			Note: fmt.Sprintf("writes primary %s is down since %s", from, f.ImpactAt.UTC().Format(time.RFC3339Nano))})
	case req.Force:
		f.ImpactAt = now
		f.Steps = append(f.Steps, state.FailoverStep{Step: state.StepImpact, Name: "impact", Time: now,
			Note: fmt.Sprintf("forced while %s is up: %s", from, who.Reason)})
	default:
		return state.Failover{}, errorf(ErrConflict,
			"the writes primary %s of %q is up: no impact to fail over for (force it with a reason)", from, service)
	}
	if req.DryRun {
		return n.dryRunLocked(v, cs, f, now), nil
	}
	id, err := newFailoverID(n.st)
	if err != nil {
		return state.Failover{}, err
	}
	f.ID = id
	f.Steps = append(f.Steps, state.FailoverStep{Step: state.StepFreeze, Name: "freeze", Time: now,
		Note: "dial changes, shifts and other failovers of " + service + " are refused until this failover ends"})
	f.Step = state.StepReadiness
	target := service + " " + from + "→" + req.To
	audit := []state.AuditEntry{
		{Token: who.Token, Action: "failover.start", Target: target, Old: from, New: req.To, Reason: who.Reason},
	}
	for _, s := range f.Steps {
		audit = append(audit, stepAudit(&f, s))
	}
	err = n.changeLocked(func(s *state.Snapshot) error {
		// Decided again on the stored state: another node may have
		// started one meanwhile (the fleet's auto rule, or an operator).
		if r := runningFailover(s.Failovers, service); r != nil {
			return errorf(ErrConflict, "service %q is frozen by failover %s (%s → %s) until it ends", service, r.ID, r.From, r.To)
		}
		s.Failovers = append(dropEndedFailovers(s.Failovers), f)
		return nil
	}, audit...)
	if err != nil {
		return state.Failover{}, err
	}
	n.log.Info("failover started", "failover", id, "service", service, "from", from, "to", req.To,
		"force", req.Force, "accept_data_loss", req.AcceptDataLoss, "auto", auto, "token", who.Token, "reason", who.Reason)
	return f, nil
}

// failoverConfig is a service's failover settings, defaults when it has
// none.
func failoverConfig(cs *config.Service) config.Failover {
	if cs.Failover != nil {
		return *cs.Failover
	}
	return config.Failover{
		RPO: config.Duration(config.DefaultFailoverRPO), MaxWait: config.Duration(config.DefaultFailoverMaxWait),
		Hold: config.Duration(config.DefaultFailoverHold), After: config.Duration(config.DefaultFailoverAfter),
		Failback: "manual", HoldDown: config.Duration(config.DefaultFailoverHoldDown),
		Guard: config.FailoverGuard{MaxErrorRatio: config.DefaultFailoverMaxErrorRatio},
	}
}

// dryRunLocked takes steps 2 to 4 of f as they stand at now without
// waiting or changing anything, and says what would happen.
func (n *Node) dryRunLocked(v *View, cs *config.Service, f state.Failover, now time.Time) state.Failover {
	fc := failoverConfig(cs)
	f.State, f.Ended = state.FailoverPlanned, now
	add := func(step int, note string) {
		f.Steps = append(f.Steps, state.FailoverStep{Step: step, Name: stepName(step), Time: now, Note: note})
		f.Step = step
	}
	add(state.StepFreeze, "would freeze dial changes, shifts and other failovers of "+cs.Name)
	var plan []string
	if !n.servingLocked(v, f.To) {
		add(state.StepReadiness, "target "+f.To+" is not up")
		f.Plan = "would stop as rolled_back at step 3: target " + f.To + " is not up; nothing would move"
		return f
	}
	add(state.StepReadiness, "target "+f.To+" is up")
	lag := n.fo.replicas.Lag(f.To)
	rpo := fc.RPO.D()
	switch {
	case !n.fo.replicas.Has(f.To):
		add(state.StepLag, "target "+f.To+" has no replication.lag_url: its lag is unknown")
	case lag.Known:
		add(state.StepLag, fmt.Sprintf("replica lag of %s is %gs (rpo %s)", f.To, lag.Seconds, rpo))
	default:
		add(state.StepLag, "replica lag of "+f.To+" is unknown: "+lag.Error)
	}
	switch {
	case lag.Known && lag.Seconds <= rpo.Seconds():
		plan = append(plan, fmt.Sprintf("lag %gs is within rpo %s: would promote %s now", lag.Seconds, rpo, f.To))
	case f.AcceptDataLoss:
		plan = append(plan, fmt.Sprintf("lag is over rpo %s or unknown; accept_data_loss: would promote %s now", rpo, f.To))
	default:
		plan = append(plan, fmt.Sprintf("lag is over rpo %s or unknown: would wait up to max_wait %s, then stop as blocked_rpo", rpo, fc.MaxWait))
	}
	if cs.Failover == nil || n.promoteOf(v, f.To) == nil {
		plan = append(plan, "no promote hook for "+f.To)
	} else {
		plan = append(plan, "would POST "+n.promoteOf(v, f.To).URL)
	}
	plan = append(plan, "would make "+f.To+" the writes primary",
		n.trafficPlan(cs, f.From, f.To, f.Hold))
	f.Plan = strings.Join(plan, "; ")
	return f
}

// promoteOf returns the promote hook of a region, or nil.
func (n *Node) promoteOf(v *View, region string) *config.Promote {
	for i := range v.Config.Regions {
		if v.Config.Regions[i].Name == region {
			return v.Config.Regions[i].Promote
		}
	}
	return nil
}

// Failovers lists a service's failovers, newest first.
func (n *Node) Failovers(service string) ([]state.Failover, error) {
	v := n.View()
	if v.Policy.Service(service) < 0 {
		return nil, errorf(ErrNotFound, "unknown service %q", service)
	}
	out := []state.Failover{}
	for i := len(v.State.Failovers) - 1; i >= 0; i-- {
		if v.State.Failovers[i].Service == service {
			out = append(out, v.State.Failovers[i])
		}
	}
	return out, nil
}

// stepAudit is the audit entry of a completed step.
func stepAudit(f *state.Failover, s state.FailoverStep) state.AuditEntry {
	return state.AuditEntry{Token: f.Token, Action: "failover.step", Time: s.Time,
		Target: f.Service + " " + f.From + "→" + f.To,
		Old:    fmt.Sprintf("failover %s", f.ID), New: fmt.Sprintf("step %d %s", s.Step, s.Name), Reason: s.Note}
}

func dropEndedFailovers(list []state.Failover) []state.Failover {
	ended := 0
	for i := range list {
		if list[i].State != state.FailoverRunning {
			ended++
		}
	}
	out := make([]state.Failover, 0, len(list)+1)
	for _, f := range list {
		if f.State != state.FailoverRunning && ended >= maxEndedFailovers {
			ended--
			continue
		}
		out = append(out, f)
	}
	return out
}

func newFailoverID(st state.Snapshot) (string, error) {
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("making a failover id: %w", err)
		}
		id := hex.EncodeToString(b[:])
		if st.Failover(id) == nil && st.Drill(id) == nil {
			return id, nil
		}
	}
}
