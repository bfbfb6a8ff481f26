package state

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFailoverAndDrillJSON(t *testing.T) {
	t.Parallel()
	rto, rpo := 3.25, 0.2
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	s := Empty()
	s.Writers = map[string]string{"api": "eu-west"}
	s.Failovers = []Failover{{ID: "f1", Service: "api", From: "us-east", To: "eu-west", State: FailoverDone, Step: StepDone,
		Steps: []FailoverStep{{Step: StepImpact, Name: "impact", Time: now}}, Hold: time.Minute,
		RTOSeconds: &rto, RPOSeconds: &rpo, Created: now}}
	s.Drills = []Drill{{ID: "d1", Service: "api", Region: "us-east", Duration: 2 * time.Minute, State: DrillDone, RTOSeconds: &rto}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"hold":"1m0s"`, `"duration":"2m0s"`, `"rto_seconds":3.25`, `"writers":{"api":"eu-west"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip:\ngot  %+v\nwant %+v", back, s)
	}
	c := s.Clone()
	*c.Failovers[0].RTOSeconds = 9
	c.Writers["api"] = "us-east"
	c.Failovers[0].Steps[0].Name = "x"
	if *s.Failovers[0].RTOSeconds != 3.25 || s.Writers["api"] != "eu-west" || s.Failovers[0].Steps[0].Name != "impact" {
		t.Fatal("Clone shares failover state")
	}
}

func TestFailoverValidate(t *testing.T) {
	t.Parallel()
	ok := Failover{ID: "f", Service: "api", From: "a", To: "b", State: FailoverRunning, Step: StepLag}
	for _, tc := range []struct {
		name string
		edit func(*Snapshot)
		want string
	}{
		{"valid", func(*Snapshot) {}, ""},
		{"bad state", func(s *Snapshot) { s.Failovers[0].State = "sideways" }, `unknown state "sideways"`},
		{"bad step", func(s *Snapshot) { s.Failovers[0].Step = 9 }, "step 9 is outside 1..8"},
		{"no target", func(s *Snapshot) { s.Failovers[0].To = "" }, "empty id, service, from or to"},
		{"duplicate", func(s *Snapshot) { s.Failovers = append(s.Failovers, s.Failovers[0]) }, "duplicate id"},
		{"empty writer", func(s *Snapshot) { s.Writers = map[string]string{"api": ""} }, "writers: empty"},
		{"drill override", func(s *Snapshot) {
			s.Drills = []Drill{{ID: "d", Service: "api", Region: "a", State: DrillRunning, Override: "sideways"}}
		}, `unknown override "sideways"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Empty()
			s.Failovers = []Failover{ok}
			tc.edit(&s)
			err := s.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
