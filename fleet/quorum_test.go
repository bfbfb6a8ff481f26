package fleet

import "testing"

func TestConsensus(t *testing.T) {
	t.Parallel()
	member := func(name string, up ...bool) Member {
		m := Member{Name: name}
		for i, u := range up {
			m.Regions = append(m.Regions, RegionStatus{Name: []string{"a", "b"}[i], Up: u})
		}
		return m
	}
	tests := []struct {
		name    string
		own     []bool
		members []Member
		quorum  float64
		want    []bool // per region: up
		share   []float64
	}{
		{"alone down", []bool{false, true}, nil, 0.5, []bool{false, true}, []float64{0, 1}},
		{"alone, own record ignored", []bool{false, true}, []Member{member("self", true, false)}, 0.5, []bool{false, true}, []float64{0, 1}},
		{"one of three sees down", []bool{false, true},
			[]Member{member("self", true, true), member("n2", true, true), member("n3", true, true)}, 0.5,
			[]bool{true, true}, []float64{2.0 / 3, 1}},
		{"two of three see down", []bool{false, true},
			[]Member{member("n2", false, true), member("n3", true, true)}, 0.5,
			[]bool{false, true}, []float64{1.0 / 3, 1}},
		{"half is not more than half", []bool{false, true}, []Member{member("n2", true, true)}, 0.5,
			[]bool{true, true}, []float64{0.5, 1}},
		{"low quorum: one of three is enough", []bool{true, false},
			[]Member{member("n2", true, true), member("n3", true, true)}, 0.3,
			[]bool{true, false}, []float64{1, 2.0 / 3}},
		{"peer that does not report on a region", []bool{false, false}, []Member{member("n2", true)}, 0.5,
			[]bool{true, false}, []float64{0.5, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			own := []RegionStatus{{Name: "a", Up: tt.own[0]}, {Name: "b", Up: tt.own[1]}}
			got := Consensus("self", own, tt.members, tt.quorum)
			for i := range got {
				if got[i].Up != tt.want[i] || got[i].UpShare != tt.share[i] {
					t.Errorf("region %s: got up=%v share=%v, want up=%v share=%v (%+v)",
						got[i].Region, got[i].Up, got[i].UpShare, tt.want[i], tt.share[i], got[i])
				}
			}
		})
	}
}
