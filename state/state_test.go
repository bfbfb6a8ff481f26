package state

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fullSnapshot sets every field, so round trips and copies are checked
// for all of them.
func fullSnapshot() Snapshot {
	return Snapshot{
		Version:    FormatVersion,
		Generation: 7,
		Dials: map[string]map[string]int{
			"api": {"us-east": 90, "eu-west": 10},
			"web": {"ap-south": 0},
		},
		Overrides: map[string]Override{"us-east": OverrideDown, "eu-west": OverrideAuto},
		Shifts: []Shift{{
			ID: "s1", Service: "api", Region: "us-east",
			Steps: []int{90, 50, 0}, Hold: 5 * time.Minute,
			Guard:       Guard{MaxErrorRatio: 0.01, MaxP95: 500 * time.Millisecond, MinRequests: 100, MaxWait: 20 * time.Minute},
			State:       ShiftRolledBack,
			Step:        1,
			StartDial:   100,
			StepStarted: t0.Add(time.Minute),
			Created:     t0,
			Updated:     t0.Add(2 * time.Minute),
			Reason:      "error ratio 0.05 > 0.01",
			Token:       "ops",
		}},
		Audit: []AuditEntry{
			{Seq: 1, Time: t0, Token: "ops", Action: "dial", Target: "api/eu-west", Old: "100", New: "10", Reason: "drain"},
			{Seq: 2, Time: t0.Add(time.Second), Token: "ops", Action: "override", Target: "region us-east", Old: "auto", New: "down"},
		},
	}
}

func TestCloneIsDeep(t *testing.T) {
	orig := fullSnapshot()
	want := fullSnapshot()
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("clone differs from original:\n got %+v\nwant %+v", c, orig)
	}
	c.Dials["api"]["us-east"] = 1
	c.Dials["new"] = map[string]int{"x": 1}
	c.Overrides["us-east"] = OverrideUp
	c.Shifts[0].Steps[0] = 1
	c.Shifts[0].State = ShiftDone
	c.Audit[0].Reason = "changed"
	c.Audit = append(c.Audit, AuditEntry{Seq: 3})
	if !reflect.DeepEqual(orig, want) {
		t.Fatalf("editing the clone changed the original:\n got %+v\nwant %+v", orig, want)
	}
}

func TestCloneKeepsNil(t *testing.T) {
	c := Snapshot{Dials: map[string]map[string]int{"api": nil}}.Clone()
	if c.Overrides != nil || c.Shifts != nil || c.Audit != nil {
		t.Errorf("nil fields became non-nil: %+v", c)
	}
	if m, ok := c.Dials["api"]; !ok || m != nil {
		t.Errorf("nil inner dial map: got %v (present %v), want nil and present", m, ok)
	}
}

func TestSnapshotHelpers(t *testing.T) {
	var s Snapshot
	if _, ok := s.Dial("api", "us-east"); ok {
		t.Error("Dial on an empty snapshot reports a stored dial")
	}
	s.SetDial("api", "us-east", 40)
	if d, ok := s.Dial("api", "us-east"); !ok || d != 40 {
		t.Errorf("Dial after SetDial: got %d, %v; want 40, true", d, ok)
	}
	s.Shifts = []Shift{{ID: "a"}, {ID: "b"}}
	s.Shift("b").State = ShiftDone
	if s.Shifts[1].State != ShiftDone {
		t.Error("editing through Shift() did not reach the snapshot")
	}
	if s.Shift("zz") != nil {
		t.Error("Shift of an unknown id is not nil")
	}
}

func TestOverrideValid(t *testing.T) {
	for _, o := range []Override{"", "up", "down", "auto"} {
		if !o.Valid() {
			t.Errorf("%q: got invalid, want valid", o)
		}
	}
	for _, o := range []Override{"UP", "drain", " "} {
		if o.Valid() {
			t.Errorf("%q: got valid, want invalid", o)
		}
	}
}

func TestShiftJSONDurations(t *testing.T) {
	b, err := json.Marshal(fullSnapshot().Shifts[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"hold":"5m0s"`, `"max_p95":"500ms"`, `"max_wait":"20m0s"`, `"start_dial":100`, `"step_started":"2025-03-01T12:01:00Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("marshalled shift lacks %s: %s", want, b)
		}
	}
	var back Shift
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, fullSnapshot().Shifts[0]) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, fullSnapshot().Shifts[0])
	}
}

func TestShiftJSONDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Shift
		wantErr string
	}{
		{name: "strings", in: `{"id":"a","hold":"5m","guard":{"max_p95":"250ms","max_wait":"1h"}}`,
			want: Shift{ID: "a", Hold: 5 * time.Minute, Guard: Guard{MaxP95: 250 * time.Millisecond, MaxWait: time.Hour}}},
		{name: "nanoseconds", in: `{"hold":1000000000,"guard":{"max_p95":5}}`,
			want: Shift{Hold: time.Second, Guard: Guard{MaxP95: 5}}},
		{name: "absent", in: `{"guard":{"max_error_ratio":0.5}}`, want: Shift{Guard: Guard{MaxErrorRatio: 0.5}}},
		{name: "bad hold", in: `{"hold":"five minutes"}`, wantErr: `bad duration "five minutes"`},
		{name: "bad p95", in: `{"guard":{"max_p95":"1x"}}`, wantErr: `bad duration "1x"`},
		{name: "hold of wrong type", in: `{"hold":true}`, wantErr: `bad duration true: want a string such as "5m"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Shift
			err := json.Unmarshal([]byte(tc.in), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Snapshot)
		wantErr string
	}{
		{name: "full snapshot is valid", edit: func(*Snapshot) {}},
		{name: "empty is valid", edit: func(s *Snapshot) { *s = Empty() }},
		{name: "version", edit: func(s *Snapshot) { s.Version = 2 }, wantErr: "format version 2, want 1"},
		{name: "dial too high", edit: func(s *Snapshot) { s.Dials["api"]["us-east"] = 101 }, wantErr: "dial of api/us-east: 101 is outside 0..100"},
		{name: "dial negative", edit: func(s *Snapshot) { s.Dials["web"]["ap-south"] = -1 }, wantErr: "dial of web/ap-south: -1 is outside 0..100"},
		{name: "empty service", edit: func(s *Snapshot) { s.Dials[""] = map[string]int{"a": 1} }, wantErr: "dials: empty service name"},
		{name: "empty dial region", edit: func(s *Snapshot) { s.Dials["api"][""] = 1 }, wantErr: `dials of service "api": empty region name`},
		{name: "unknown override", edit: func(s *Snapshot) { s.Overrides["us-east"] = "drain" }, wantErr: `override of region "us-east": unknown value "drain" (want up, down or auto)`},
		{name: "empty override region", edit: func(s *Snapshot) { s.Overrides[""] = OverrideUp }, wantErr: "overrides: empty region name"},
		{name: "shift id", edit: func(s *Snapshot) { s.Shifts[0].ID = "" }, wantErr: `shift 0 (""): empty id`},
		{name: "shift duplicate", edit: func(s *Snapshot) { s.Shifts = append(s.Shifts, s.Shifts[0]) }, wantErr: `shift 1: duplicate id "s1"`},
		{name: "shift service", edit: func(s *Snapshot) { s.Shifts[0].Service = "" }, wantErr: `shift 0 ("s1"): empty service`},
		{name: "shift region", edit: func(s *Snapshot) { s.Shifts[0].Region = "" }, wantErr: `shift 0 ("s1"): empty region`},
		{name: "shift no steps", edit: func(s *Snapshot) { s.Shifts[0].Steps = nil }, wantErr: "no steps"},
		{name: "shift step dial", edit: func(s *Snapshot) { s.Shifts[0].Steps[2] = 200 }, wantErr: "step 2: dial 200 is outside 0..100"},
		{name: "shift step index", edit: func(s *Snapshot) { s.Shifts[0].Step = 4 }, wantErr: "step 4 is outside 0..3"},
		{name: "shift start dial", edit: func(s *Snapshot) { s.Shifts[0].StartDial = -5 }, wantErr: "start dial -5 is outside 0..100"},
		{name: "shift hold", edit: func(s *Snapshot) { s.Shifts[0].Hold = -time.Second }, wantErr: "negative hold -1s"},
		{name: "shift state", edit: func(s *Snapshot) { s.Shifts[0].State = "paused" }, wantErr: `unknown state "paused"`},
		{name: "guard ratio", edit: func(s *Snapshot) { s.Shifts[0].Guard.MaxErrorRatio = 1.5 }, wantErr: "guard: max error ratio 1.5 is outside 0..1"},
		{name: "guard ratio NaN", edit: func(s *Snapshot) { s.Shifts[0].Guard.MaxErrorRatio = math.NaN() }, wantErr: "guard: max error ratio NaN is outside 0..1"},
		{name: "guard p95", edit: func(s *Snapshot) { s.Shifts[0].Guard.MaxP95 = -1 }, wantErr: "guard: negative max p95"},
		{name: "guard min requests", edit: func(s *Snapshot) { s.Shifts[0].Guard.MinRequests = -1 }, wantErr: "guard: negative min requests -1"},
		{name: "guard max wait", edit: func(s *Snapshot) { s.Shifts[0].Guard.MaxWait = -1 }, wantErr: "guard: negative max wait"},
		{name: "audit order", edit: func(s *Snapshot) { s.Audit[1].Seq = 1 }, wantErr: "audit entry 1: seq 1 does not follow 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fullSnapshot()
			tc.edit(&s)
			err := s.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
