package state

import (
	"context"
	"time"
)

// FormatVersion is the snapshot format this build reads and writes.
const FormatVersion = 1

// DefaultAuditCap is how many audit entries a store keeps when its options
// name no cap; older entries are dropped first.
const DefaultAuditCap = 10000

// Override forces a region's health; "" means OverrideAuto.
type Override string

// Region health overrides.
const (
	OverrideUp   Override = "up"   // serve the region whatever its checks say
	OverrideDown Override = "down" // never serve the region
	OverrideAuto Override = "auto" // follow health checks
)

// Valid reports whether o is one of the known overrides or "".
func (o Override) Valid() bool {
	switch o {
	case "", OverrideUp, OverrideDown, OverrideAuto:
		return true
	}
	return false
}

// Shift states.
const (
	ShiftRunning    = "running"
	ShiftDone       = "done"
	ShiftRolledBack = "rolled_back"
	ShiftAborted    = "aborted"
)

// Shift walks one region's dial of one service through Steps, holding each
// step for Hold while Guard watches the regions gaining traffic. In JSON,
// Hold is a Go duration string ("5m0s"); a number is read as nanoseconds.
type Shift struct {
	ID          string        `json:"id"`
	Service     string        `json:"service"`
	Region      string        `json:"region"`
	Steps       []int         `json:"steps"` // dials, 0..100
	Hold        time.Duration `json:"hold"`
	Guard       Guard         `json:"guard"`
	State       string        `json:"state"`      // ShiftRunning, ShiftDone, ShiftRolledBack or ShiftAborted
	Step        int           `json:"step"`       // index into Steps of the current step
	StartDial   int           `json:"start_dial"` // the dial a rollback or abort restores
	StepStarted time.Time     `json:"step_started"`
	Created     time.Time     `json:"created"`
	Updated     time.Time     `json:"updated"`
	Reason      string        `json:"reason,omitempty"`       // why it ended, e.g. the breach figures
	Token       string        `json:"token,omitempty"`        // name of the token that started it
	StartReason string        `json:"start_reason,omitempty"` // the reason it was started with
}

// Guard holds the limits a shift is judged against. In JSON, MaxP95 and
// MaxWait are Go duration strings.
type Guard struct {
	MaxErrorRatio float64       `json:"max_error_ratio"` // 0..1
	MaxP95        time.Duration `json:"max_p95"`
	MinRequests   int           `json:"min_requests"`
	MaxWait       time.Duration `json:"max_wait"`
}

// AuditEntry records one change: who made it, when, to what, from which value
// to which, and why. Old and New are the values as an operator reads them
// ("100", "down", a step list …).
type AuditEntry struct {
	Seq    uint64    `json:"seq"`    // filled by the store; rises by one per entry
	Time   time.Time `json:"time"`   // filled by the store when zero
	Token  string    `json:"token"`  // token name, never its secret
	Action string    `json:"action"` // "dial", "override", "shift.start", "shift.step", "shift.rollback", "reload" …
	Target string    `json:"target"` // "api/eu-west", "region us-east" …
	Old    string    `json:"old"`
	New    string    `json:"new"`
	Reason string    `json:"reason,omitempty"`
	Node   string    `json:"node,omitempty"` // the node that took the change (a fleet)
}

// Snapshot is the whole operator state as a value. Stores hand out deep
// copies, so a caller may keep or edit one freely.
type Snapshot struct {
	Version    int                       `json:"version"`    // format version, FormatVersion
	Generation uint64                    `json:"generation"` // rises by one on every change
	Dials      map[string]map[string]int `json:"dials"`      // service → region → dial (0..100)
	Overrides  map[string]Override       `json:"overrides"`  // region → override
	Shifts     []Shift                   `json:"shifts"`
	Drained    map[string]Drain          `json:"drained,omitempty"` // node name → drain; see drain.go
	// Writers, Failovers and Drills are section 10's state: each service's
	// writes primary when a failover moved it, and the runbook runs.
	Writers   map[string]string `json:"writers,omitempty"`
	Failovers []Failover        `json:"failovers,omitempty"`
	Drills    []Drill           `json:"drills,omitempty"`
	Audit     []AuditEntry      `json:"audit"` // oldest first, capped to the newest entries
}

// Empty returns the state of a store that has never been written.
func Empty() Snapshot {
	return Snapshot{
		Version:   FormatVersion,
		Dials:     map[string]map[string]int{},
		Overrides: map[string]Override{},
		Shifts:    []Shift{},
		Audit:     []AuditEntry{},
	}
}

// Store keeps a Snapshot. Implementations are safe for concurrent use.
type Store interface {
	// Load returns a deep copy of the current state.
	Load() (Snapshot, error)
	// Update applies fn to a deep copy of the current state and stores the
	// result together with the audit entries, atomically: the change and
	// its entries are durable before Update returns, or nothing is written.
	// An error from fn is returned as it is and aborts the change. The store
	// owns Version, Generation and Audit: fn's edits to them are discarded,
	// Generation rises by one and the entries are appended with Seq (and
	// Time, when zero) filled. Update returns the stored state, or the zero
	// Snapshot with an error.
	Update(fn func(*Snapshot) error, audit ...AuditEntry) (Snapshot, error)
	// Watch delivers the state each time another process sharing the
	// backend changes it; changes made through this Store are not echoed.
	// The channel is closed when ctx ends or the store is closed.
	Watch(ctx context.Context) <-chan Snapshot
	// Close releases the backend. Later calls fail; Close is idempotent.
	Close() error
}

// Clone returns a deep copy of s. Nil maps and slices stay nil.
func (s Snapshot) Clone() Snapshot {
	c := s
	if s.Dials != nil {
		c.Dials = make(map[string]map[string]int, len(s.Dials))
		for svc, regions := range s.Dials {
			if regions == nil {
				c.Dials[svc] = nil
				continue
			}
			m := make(map[string]int, len(regions))
			for r, d := range regions {
				m[r] = d
			}
			c.Dials[svc] = m
		}
	}
	if s.Overrides != nil {
		c.Overrides = make(map[string]Override, len(s.Overrides))
		for r, o := range s.Overrides {
			c.Overrides[r] = o
		}
	}
	if s.Shifts != nil {
		c.Shifts = make([]Shift, len(s.Shifts))
		for i, sh := range s.Shifts {
			if sh.Steps != nil {
				sh.Steps = append(make([]int, 0, len(sh.Steps)), sh.Steps...)
			}
			c.Shifts[i] = sh
		}
	}
	c.Drained = cloneDrained(s.Drained)
	if s.Writers != nil {
		c.Writers = make(map[string]string, len(s.Writers))
		for k, v := range s.Writers {
			c.Writers[k] = v
		}
	}
	c.Failovers = cloneFailovers(s.Failovers)
	c.Drills = cloneDrills(s.Drills)
	if s.Audit != nil {
		c.Audit = append(make([]AuditEntry, 0, len(s.Audit)), s.Audit...)
	}
	return c
}

// Dial returns the stored dial of service in region and whether one is
// stored (a region without one runs at its configured dial).
func (s Snapshot) Dial(service, region string) (int, bool) {
	d, ok := s.Dials[service][region]
	return d, ok
}

// SetDial stores the dial of service in region, creating maps as needed.
func (s *Snapshot) SetDial(service, region string, dial int) {
	if s.Dials == nil {
		s.Dials = map[string]map[string]int{}
	}
	if s.Dials[service] == nil {
		s.Dials[service] = map[string]int{}
	}
	s.Dials[service][region] = dial
}

// Shift returns a pointer to the shift with the given id, or nil. The
// pointer aliases s.Shifts, so an Update function can edit through it.
func (s *Snapshot) Shift(id string) *Shift {
	for i := range s.Shifts {
		if s.Shifts[i].ID == id {
			return &s.Shifts[i]
		}
	}
	return nil
}

// normalize makes the top-level maps and slices non-nil, so that a snapshot
// written and read back compares equal to the one kept in memory.
func (s *Snapshot) normalize() {
	if s.Dials == nil {
		s.Dials = map[string]map[string]int{}
	}
	if s.Overrides == nil {
		s.Overrides = map[string]Override{}
	}
	if s.Shifts == nil {
		s.Shifts = []Shift{}
	}
	if s.Audit == nil {
		s.Audit = []AuditEntry{}
	}
}
