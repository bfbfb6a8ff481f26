package state

import (
	"errors"
	"fmt"
	"time"
)

// Failover states. A failover is FailoverRunning until it ends in one of
// the others; FailoverPlanned is a dry run's answer.
const (
	FailoverRunning        = "running"
	FailoverDone           = "done"
	FailoverBlockedRPO     = "blocked_rpo"
	FailoverRolledBack     = "rolled_back"
	FailoverNeedsAttention = "needs_attention"
	FailoverPlanned        = "planned"
)

// Failover steps (SPEC section 10), numbered as the runbook numbers them.
const (
	StepImpact    = 1
	StepFreeze    = 2
	StepReadiness = 3
	StepLag       = 4
	StepPromote   = 5
	StepWrites    = 6
	StepTraffic   = 7
	StepDone      = 8
)

// Failover moves a service's writes primary From → To through the
// runbook's steps. Times are when each step completed; the runner resumes
// a running failover at Step after a restart.
type Failover struct {
	ID             string         `json:"id"`
	Service        string         `json:"service"`
	From           string         `json:"from"`
	To             string         `json:"to"`
	Force          bool           `json:"force,omitempty"`
	AcceptDataLoss bool           `json:"accept_data_loss,omitempty"`
	DryRun         bool           `json:"dry_run,omitempty"`
	Auto           string         `json:"auto,omitempty"` // "failover" or "failback" when started by the node itself
	State          string         `json:"state"`
	Step           int            `json:"step"` // the step being worked on (StepImpact..StepDone)
	Steps          []FailoverStep `json:"steps"`
	ImpactAt       time.Time      `json:"impact_at"`          // the primary's first down event, or the request time when forced
	LagSince       time.Time      `json:"lag_since,omitzero"` // when step 4 began waiting
	// PromoteCalled is stored before the promote hook is called, so that
	// a restart never calls it twice; PromoteResult says how it ended.
	PromoteCalled bool          `json:"promote_called,omitempty"`
	PromoteResult string        `json:"promote_result,omitempty"`
	Shift         string        `json:"shift,omitempty"` // the traffic step's shift
	Hold          time.Duration `json:"hold"`
	// RTO and RPO in seconds, set when measured: RTO at step 8, RPO (the
	// target's replica lag) at promotion; -1 when the lag was unknown.
	RTOSeconds *float64  `json:"rto_seconds,omitempty"`
	RPOSeconds *float64  `json:"rpo_seconds,omitempty"`
	Plan       string    `json:"plan,omitempty"` // a dry run's account of what would happen
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	Ended      time.Time `json:"ended,omitzero"`
	Reason     string    `json:"reason,omitempty"` // the operator's reason
	Outcome    string    `json:"outcome,omitempty"`
	Token      string    `json:"token,omitempty"`
}

// FailoverStep is one completed step with its time.
type FailoverStep struct {
	Step int       `json:"step"`
	Name string    `json:"name"`
	Time time.Time `json:"time"`
	Note string    `json:"note,omitempty"`
}

// Drill states.
const (
	DrillRunning = "running"
	DrillDone    = "done"
	DrillAborted = "aborted"
)

// Drill forces a region of a service down for Duration and measures how
// long until neither DNS answers nor proxied requests go to it.
type Drill struct {
	ID       string        `json:"id"`
	Service  string        `json:"service"`
	Region   string        `json:"region"`
	Duration time.Duration `json:"duration"`
	State    string        `json:"state"`
	// Override is the region's override before the drill, put back after.
	Override Override  `json:"override"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	// RTOSeconds is how long until traffic stopped reaching the region;
	// nil while unmeasured (or when it never stopped within the drill).
	RTOSeconds *float64 `json:"rto_seconds,omitempty"`
	// Requests and Errors count the service's proxied requests during the
	// drill and those answered with an error (5xx, or no answer).
	Requests uint64    `json:"requests"`
	Errors   uint64    `json:"errors"`
	DNSLast  time.Time `json:"dns_last,omitzero"`   // the last DNS answer with the region
	ProxLast time.Time `json:"proxy_last,omitzero"` // the last proxied request to the region
	Outcome  string    `json:"outcome,omitempty"`
	Token    string    `json:"token,omitempty"`
}

// Failover returns a pointer to the failover with the given id, or nil.
// The pointer aliases s.Failovers.
func (s *Snapshot) Failover(id string) *Failover {
	for i := range s.Failovers {
		if s.Failovers[i].ID == id {
			return &s.Failovers[i]
		}
	}
	return nil
}

// Drill returns a pointer to the drill with the given id, or nil.
func (s *Snapshot) Drill(id string) *Drill {
	for i := range s.Drills {
		if s.Drills[i].ID == id {
			return &s.Drills[i]
		}
	}
	return nil
}

// SetWriter stores the writes primary of a service.
func (s *Snapshot) SetWriter(service, region string) {
	if s.Writers == nil {
		s.Writers = map[string]string{}
	}
	s.Writers[service] = region
}

func cloneFailovers(list []Failover) []Failover {
	if list == nil {
		return nil
	}
	out := make([]Failover, len(list))
	for i, f := range list {
		if f.Steps != nil {
			f.Steps = append(make([]FailoverStep, 0, len(f.Steps)), f.Steps...)
		}
		if f.RTOSeconds != nil {
			v := *f.RTOSeconds
			f.RTOSeconds = &v
		}
		if f.RPOSeconds != nil {
			v := *f.RPOSeconds
			f.RPOSeconds = &v
		}
		out[i] = f
	}
	return out
}

func cloneDrills(list []Drill) []Drill {
	if list == nil {
		return nil
	}
	out := make([]Drill, len(list))
	for i, d := range list {
		if d.RTOSeconds != nil {
			v := *d.RTOSeconds
			d.RTOSeconds = &v
		}
		out[i] = d
	}
	return out
}

// validateFailovers checks the writers, failovers and drills of s.
func (s Snapshot) validateFailovers() error {
	for _, svc := range sortedKeys(s.Writers) {
		if svc == "" || s.Writers[svc] == "" {
			return fmt.Errorf("writers: empty service or region name (%q: %q)", svc, s.Writers[svc])
		}
	}
	ids := map[string]bool{}
	for i, f := range s.Failovers {
		var err error
		switch {
		case f.ID == "" || f.Service == "" || f.From == "" || f.To == "":
			err = errors.New("empty id, service, from or to")
		case ids[f.ID]:
			err = errors.New("duplicate id")
		case f.Step < StepImpact || f.Step > StepDone:
			err = fmt.Errorf("step %d is outside %d..%d", f.Step, StepImpact, StepDone)
		case f.Hold < 0:
			err = fmt.Errorf("negative hold %s", f.Hold)
		}
		switch f.State {
		case FailoverRunning, FailoverDone, FailoverBlockedRPO, FailoverRolledBack, FailoverNeedsAttention, FailoverPlanned:
		default:
			err = fmt.Errorf("unknown state %q", f.State)
		}
		if err != nil {
			return fmt.Errorf("failover %d (%q): %w", i, f.ID, err)
		}
		ids[f.ID] = true
	}
	for i, d := range s.Drills {
		var err error
		switch {
		case d.ID == "" || d.Service == "" || d.Region == "":
			err = errors.New("empty id, service or region")
		case ids[d.ID]:
			err = errors.New("duplicate id")
		case d.Duration < 0:
			err = fmt.Errorf("negative duration %s", d.Duration)
		case !d.Override.Valid():
			err = fmt.Errorf("unknown override %q", d.Override)
		}
		switch d.State {
		case DrillRunning, DrillDone, DrillAborted:
		default:
			err = fmt.Errorf("unknown state %q", d.State)
		}
		if err != nil {
			return fmt.Errorf("drill %d (%q): %w", i, d.ID, err)
		}
		ids[d.ID] = true
	}
	return nil
}
