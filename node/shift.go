package node

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/shift"
	"github.com/meridian-edge/meridian/state"
)

// maxEndedShifts is how many ended shifts the state keeps; the oldest
// are dropped when a new shift starts.
const maxEndedShifts = 100

// ShiftRequest is a staged shift an operator asks for: walk Region's dial
// through Steps, holding each for Hold (0: shift.DefaultHold) while Guard
// watches the regions gaining traffic.
type ShiftRequest struct {
	Region string
	Steps  []int
	Hold   time.Duration
	Guard  state.Guard
}

// shifts is the runner's in-memory side: one window per running shift,
// and the shift metrics. The windows are guarded by Node.mu.
type shifts struct {
	windows   map[string]*shiftWindow // shift id → its current step's window
	rollbacks *prometheus.CounterVec

	lockMu sync.Mutex           // guards locks
	locks  map[string]time.Time // fleet: shift id → until when its held lock is trusted
}

var shiftStepDesc = prometheus.NewDesc("meridian_shift_step",
	"Step index (0-based) of the running shift of a region in a service; -1 when none runs.",
	[]string{"service", "region"}, nil)

func newShifts(n *Node) *shifts {
	s := &shifts{
		windows: map[string]*shiftWindow{},
		locks:   map[string]time.Time{},
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_shift_rollbacks_total",
			Help: "Shifts rolled back to their start dial because the guard was breached.",
		}, []string{"service", "region"}),
	}
	for _, svc := range n.cfg.Services {
		for _, r := range svc.Regions {
			s.rollbacks.WithLabelValues(svc.Name, r)
		}
	}
	n.reg.MustRegister(s.rollbacks, &shiftCollector{n: n})
	return s
}

// shiftCollector reads every service region's running shift step from
// the published view at scrape time.
type shiftCollector struct{ n *Node }

func (c *shiftCollector) Describe(ch chan<- *prometheus.Desc) { ch <- shiftStepDesc }

func (c *shiftCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.n.View()
	if v == nil {
		return
	}
	for _, s := range v.Config.Services {
		for _, r := range s.Regions {
			step := -1
			if sh := runningShift(v.State.Shifts, s.Name, r); sh != nil {
				step = sh.Step
			}
			ch <- prometheus.MustNewConstMetric(shiftStepDesc, prometheus.GaugeValue, float64(step), s.Name, r)
		}
	}
}

// runningShift returns the running shift of region in service, or nil.
func runningShift(list []state.Shift, service, region string) *state.Shift {
	for i := range list {
		if sh := &list[i]; sh.State == state.ShiftRunning && sh.Service == service && sh.Region == region {
			return sh
		}
	}
	return nil
}

// shiftConflictLocked refuses a dial change of a region that a running
// shift controls. n.mu must be held.
func (n *Node) shiftConflictLocked(service string, dials map[string]int) error {
	for r := range dials {
		if sh := runningShift(n.st.Shifts, service, r); sh != nil {
			return errorf(ErrConflict, "the dial of %s/%s is under shift %s; abort it first (meridian ctl abort %s %s)",
				service, r, sh.ID, service, sh.ID)
		}
	}
	return nil
}

// RegionStats returns the proxy's cumulative figures of service in region.
func (n *Node) RegionStats(service, region string) shift.Counters {
	return n.proxy.RegionStats(service, region)
}

// StartShift starts walking a region's dial through req.Steps. It sets the
// dial to the first step at once; the runner moves it on as each step
// holds, or puts it back where it started on a breach.
func (n *Node) StartShift(service string, req ShiftRequest, who Actor) (state.Shift, error) {
	if req.Hold == 0 {
		req.Hold = shift.DefaultHold
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.view.Load()
	j := v.Policy.Service(service)
	if j < 0 {
		return state.Shift{}, errorf(ErrNotFound, "unknown service %q", service)
	}
	cs := &v.Config.Services[j]
	if req.Region == "" {
		return state.Shift{}, errorf(ErrInvalid, "a shift needs a region")
	}
	if !contains(cs.Regions, req.Region) {
		return state.Shift{}, errorf(ErrInvalid, "region %q is not a region of service %q", req.Region, service)
	}
	if err := shift.Validate(req.Steps, req.Hold, req.Guard); err != nil {
		return state.Shift{}, errorf(ErrInvalid, "%s", err.Error())
	}
	if err := n.freezeLocked(service); err != nil {
		return state.Shift{}, err
	}
	if sh := runningShift(n.st.Shifts, service, req.Region); sh != nil {
		return state.Shift{}, errorf(ErrConflict, "shift %s is already running on %s/%s (step %d of %d); abort it first",
			sh.ID, service, req.Region, sh.Step+1, len(sh.Steps))
	}
	id, err := newShiftID(n.st)
	if err != nil {
		return state.Shift{}, err
	}
	now := n.now()
	start := n.dial(cs, req.Region)
	sh := state.Shift{
		ID: id, Service: service, Region: req.Region,
		Steps: slices.Clone(req.Steps), Hold: req.Hold, Guard: shift.WithDefaults(req.Guard, req.Hold),
		State: state.ShiftRunning, StartDial: start,
		StepStarted: now, Created: now, Updated: now, Token: who.Token, StartReason: who.Reason,
	}
	target := service + "/" + req.Region
	err = n.changeLocked(func(s *state.Snapshot) error {
		s.Shifts = append(dropEnded(s.Shifts, maxEndedShifts), sh)
		s.SetDial(service, req.Region, sh.Steps[0])
		return nil
	},
		state.AuditEntry{Token: who.Token, Action: "shift.start", Target: target,
			Old: strconv.Itoa(start), New: describeShift(&sh), Reason: who.Reason},
		state.AuditEntry{Token: who.Token, Action: "shift.step", Target: target,
			Old: strconv.Itoa(start), New: strconv.Itoa(sh.Steps[0]), Reason: stepNote(&sh, "started")})
	if err != nil {
		return state.Shift{}, err
	}
	n.shifts.windows[id] = n.newWindowLocked(&sh, now)
	n.log.Info("shift started", "shift", id, "service", service, "region", req.Region,
		"steps", sh.Steps, "hold", sh.Hold, "from", start, "token", who.Token, "reason", who.Reason)
	return sh, nil
}

// Shifts lists a service's shifts, newest first.
func (n *Node) Shifts(service string) ([]state.Shift, error) {
	v := n.View()
	if v.Policy.Service(service) < 0 {
		return nil, errorf(ErrNotFound, "unknown service %q", service)
	}
	out := []state.Shift{}
	for i := len(v.State.Shifts) - 1; i >= 0; i-- {
		if v.State.Shifts[i].Service == service {
			out = append(out, v.State.Shifts[i])
		}
	}
	return out, nil
}

// AbortShift stops a running shift and puts its region's dial back where
// the shift began.
func (n *Node) AbortShift(service, id string, who Actor) (state.Shift, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.view.Load()
	if v.Policy.Service(service) < 0 {
		return state.Shift{}, errorf(ErrNotFound, "unknown service %q", service)
	}
	sh := n.st.Shift(id)
	if sh == nil || sh.Service != service {
		return state.Shift{}, errorf(ErrNotFound, "service %q has no shift %q", service, id)
	}
	if sh.State != state.ShiftRunning {
		return state.Shift{}, errorf(ErrConflict, "shift %s is %s, not running", id, sh.State)
	}
	why := "aborted by " + orUnknown(who.Token)
	if who.Reason != "" {
		why += ": " + who.Reason
	}
	out, err := n.endShiftLocked(sh, true, state.AuditEntry{Token: who.Token, Action: "shift.abort", Reason: who.Reason},
		func(p *state.Shift, now time.Time) { shift.Abort(p, now, why) })
	if err != nil {
		return state.Shift{}, err
	}
	n.log.Info("shift aborted", "shift", id, "service", service, "region", out.Region,
		"dial", out.StartDial, "token", who.Token, "reason", who.Reason)
	return out, nil
}

// endShiftLocked ends a running shift with end (which edits the stored
// shift), putting its dial back to the start dial when restore is set, in
// one durable change with the audit entry a (its target and dials filled
// in), and forgets the shift's window. n.mu must be held.
func (n *Node) endShiftLocked(sh *state.Shift, restore bool, a state.AuditEntry,
	end func(*state.Shift, time.Time)) (state.Shift, error) {
	now := n.now()
	id, service, region := sh.ID, sh.Service, sh.Region
	a.Target, a.Old, a.New = service+"/"+region, strconv.Itoa(shift.Dial(sh)), strconv.Itoa(shift.Dial(sh))
	if restore {
		a.New = strconv.Itoa(sh.StartDial)
	}
	var out state.Shift
	err := n.changeLocked(func(s *state.Snapshot) error {
		p := s.Shift(id)
		if p == nil || p.State != state.ShiftRunning {
			return errorf(ErrConflict, "shift %s is no longer running", id)
		}
		end(p, now)
		if restore {
			s.SetDial(service, region, p.StartDial)
		}
		out = *p
		return nil
	}, a)
	if err != nil {
		return state.Shift{}, err
	}
	delete(n.shifts.windows, id)
	return out, nil
}

// dropEnded keeps at most keep ended shifts, dropping the oldest.
func dropEnded(list []state.Shift, keep int) []state.Shift {
	ended := 0
	for i := range list {
		if list[i].State != state.ShiftRunning {
			ended++
		}
	}
	out := make([]state.Shift, 0, len(list)+1)
	for _, sh := range list {
		if sh.State != state.ShiftRunning && ended >= keep {
			ended--
			continue
		}
		out = append(out, sh)
	}
	return out
}

// newShiftID returns a random id no shift in st has.
func newShiftID(st state.Snapshot) (string, error) {
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("making a shift id: %w", err)
		}
		id := hex.EncodeToString(b[:])
		if st.Shift(id) == nil {
			return id, nil
		}
	}
}

// describeShift renders a shift's plan for the audit log.
func describeShift(sh *state.Shift) string {
	steps := make([]string, len(sh.Steps))
	for i, d := range sh.Steps {
		steps[i] = strconv.Itoa(d)
	}
	s := fmt.Sprintf("shift %s: steps %s, hold %s", sh.ID, strings.Join(steps, ","), sh.Hold)
	g := sh.Guard
	if g.MaxErrorRatio > 0 {
		s += fmt.Sprintf(", max_error_ratio %g", g.MaxErrorRatio)
	}
	if g.MaxP95 > 0 {
		s += ", max_p95 " + g.MaxP95.String()
	}
	return s + fmt.Sprintf(", min_requests %d, max_wait %s", g.MinRequests, g.MaxWait)
}

// stepNote prefixes a note with the shift and its current step.
func stepNote(sh *state.Shift, note string) string {
	return fmt.Sprintf("shift %s step %d/%d: %s", sh.ID, sh.Step+1, len(sh.Steps), note)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed token"
	}
	return s
}
