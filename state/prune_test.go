package state

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestPrune(t *testing.T) {
	regions := []string{"us-east", "eu-west", "ap-south"}
	services := map[string][]string{"api": {"us-east", "eu-west"}, "web": {"ap-south"}}
	tests := []struct {
		name         string
		services     map[string][]string
		regions      []string
		edit         func(*Snapshot) // from fullSnapshot
		wantWarnings []string
		want         func(*Snapshot) // from fullSnapshot
	}{
		{
			name:     "everything still configured",
			services: services, regions: regions,
			edit: func(*Snapshot) {}, want: func(*Snapshot) {},
		},
		{
			name:     "service gone",
			services: map[string][]string{"api": {"us-east", "eu-west"}}, regions: regions,
			edit:         func(*Snapshot) {},
			wantWarnings: []string{`dropping stored dials of service "web": service no longer configured`},
			want:         func(s *Snapshot) { delete(s.Dials, "web") },
		},
		{
			name:     "region left a service",
			services: map[string][]string{"api": {"us-east"}, "web": {"ap-south"}}, regions: regions,
			edit: func(s *Snapshot) { s.Shifts[0].Region = "eu-west"; s.Shifts[0].State = ShiftRunning },
			wantWarnings: []string{
				"dropping stored dial 10 of api/eu-west: region no longer serves the service",
				`aborting shift s1 of api/eu-west: region "eu-west" no longer serves service "api"`,
			},
			want: func(s *Snapshot) {
				delete(s.Dials["api"], "eu-west")
				s.Shifts[0].Region = "eu-west"
				s.Shifts[0].State = ShiftAborted
				s.Shifts[0].Reason = `region "eu-west" no longer serves service "api"`
			},
		},
		{
			name:     "last region of a service gone drops the service entry",
			services: map[string][]string{"api": {"us-east", "eu-west"}, "web": {}}, regions: regions,
			edit:         func(*Snapshot) {},
			wantWarnings: []string{"dropping stored dial 0 of web/ap-south: region no longer serves the service"},
			want:         func(s *Snapshot) { delete(s.Dials, "web") },
		},
		{
			name:     "override of an unknown region",
			services: services, regions: []string{"eu-west", "ap-south"},
			edit:         func(*Snapshot) {},
			wantWarnings: []string{`dropping override "down" of region "us-east": region no longer configured`},
			want:         func(s *Snapshot) { delete(s.Overrides, "us-east") },
		},
		{
			name:     "running shift of a gone service",
			services: map[string][]string{"web": {"ap-south"}}, regions: regions,
			edit: func(s *Snapshot) {
				s.Shifts[0].State = ShiftRunning
				s.Shifts = append(s.Shifts, Shift{ID: "s2", Service: "api", Region: "us-east", Steps: []int{0}, State: ShiftDone})
			},
			wantWarnings: []string{
				`dropping stored dials of service "api": service no longer configured`,
				`aborting shift s1 of api/us-east: service "api" no longer configured`,
			},
			want: func(s *Snapshot) {
				delete(s.Dials, "api")
				s.Shifts[0].State = ShiftAborted
				s.Shifts[0].Reason = `service "api" no longer configured`
				s.Shifts = append(s.Shifts, Shift{ID: "s2", Service: "api", Region: "us-east", Steps: []int{0}, State: ShiftDone})
			},
		},
		{
			name:     "nothing configured",
			services: nil, regions: nil,
			edit: func(*Snapshot) {},
			wantWarnings: []string{
				`dropping stored dials of service "api": service no longer configured`,
				`dropping stored dials of service "web": service no longer configured`,
				`dropping override "auto" of region "eu-west": region no longer configured`,
				`dropping override "down" of region "us-east": region no longer configured`,
			},
			want: func(s *Snapshot) {
				s.Dials = map[string]map[string]int{}
				s.Overrides = map[string]Override{}
			},
		},
		{
			name:     "empty state",
			services: services, regions: regions,
			edit: func(s *Snapshot) { *s = Empty() },
			want: func(s *Snapshot) { *s = Empty() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fullSnapshot()
			tc.edit(&got)
			want := fullSnapshot()
			tc.want(&want)

			warnings := Prune(&got, tc.services, tc.regions)
			if !reflect.DeepEqual(warnings, tc.wantWarnings) {
				t.Errorf("warnings:\n got %q\nwant %q", warnings, tc.wantWarnings)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("snapshot:\n got %+v\nwant %+v", got, want)
			}
			if again := Prune(&got, tc.services, tc.regions); again != nil {
				t.Errorf("second Prune warned again: %q", again)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("pruned snapshot is invalid: %v", err)
			}
		})
	}
}

func TestPruneInsideUpdate(t *testing.T) {
	f := openT(t, filepath.Join(t.TempDir(), "state.json"), FileOptions{})
	if _, err := f.Update(setFull); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	got, err := f.Update(func(s *Snapshot) error {
		warnings = Prune(s, map[string][]string{"api": {"us-east", "eu-west"}}, []string{"us-east", "eu-west"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || got.Generation != 2 {
		t.Fatalf("got warnings %q at generation %d, want one warning at generation 2", warnings, got.Generation)
	}
	if _, ok := loadT(t, f).Dials["web"]; ok {
		t.Error("the stored state still holds the pruned service")
	}
}
