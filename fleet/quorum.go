package fleet

// Verdict is the fleet's view of one region.
type Verdict struct {
	Region    string  `json:"region"`
	Up        bool    `json:"up"`        // what DNS answers use under health: quorum
	UpShare   float64 `json:"up_share"`  // share of reporting nodes that see it up
	Reporting int     `json:"reporting"` // live nodes reporting on it, this one included
	Down      int     `json:"down"`      // of those, how many see it down
}

// Consensus decides each region of own (this node's view, in config
// order) from the live members' views: a region is down when more than
// quorum of the nodes reporting on it see it down. This node counts with
// its own current view, whatever its published record says; a region only
// this node reports on is decided by this node alone. self names this node
// among members.
func Consensus(self string, own []RegionStatus, members []Member, quorum float64) []Verdict {
	out := make([]Verdict, len(own))
	for i, r := range own {
		v := Verdict{Region: r.Name, Reporting: 1}
		if !r.Up {
			v.Down = 1
		}
		for k := range members {
			mb := &members[k]
			if mb.Name == self {
				continue
			}
			down, reported := mb.RegionDown(r.Name)
			if !reported {
				continue
			}
			v.Reporting++
			if down {
				v.Down++
			}
		}
		v.Up = float64(v.Down) <= quorum*float64(v.Reporting)
		if v.Reporting == 1 {
			v.Up = r.Up
		}
		v.UpShare = float64(v.Reporting-v.Down) / float64(v.Reporting)
		out[i] = v
	}
	return out
}
