package policy

import (
	"fmt"
	"strings"
)

// Explanation tells why a decision came out as it did. Its JSON form is
// what the admin API's explain route returns.
type Explanation struct {
	Service string          `json:"service"`
	Policy  string          `json:"policy"`
	Mode    string          `json:"mode"`
	Client  ClientInfo      `json:"client"`
	Rule    string          `json:"rule,omitempty"`
	Regions []RegionVerdict `json:"regions"`
	// Order is the answer's region order, best first.
	Order    []string `json:"order"`
	FailOpen bool     `json:"fail_open"`
	NoData   bool     `json:"nodata"`
	Outcome  string   `json:"outcome"`
}

// ClientInfo is the client as the decision saw it.
type ClientInfo struct {
	Addr        string   `json:"addr"`
	Country     string   `json:"country,omitempty"`
	Continent   string   `json:"continent,omitempty"`
	Subdivision string   `json:"subdivision,omitempty"`
	Lat         *float64 `json:"lat,omitempty"`
	Lon         *float64 `json:"lon,omitempty"`
}

// RegionVerdict is one region's part in a decision.
type RegionVerdict struct {
	Name     string   `json:"name"`
	Up       bool     `json:"up"`
	Override string   `json:"override"`
	Dial     int      `json:"dial"`
	Eligible bool     `json:"eligible"`
	Reason   string   `json:"reason"`
	Score    *float64 `json:"score,omitempty"`
	Unit     string   `json:"unit,omitempty"`
	// Roll is the client's dial roll for the region (0..100), when one was
	// made; Kept says whether the dial kept the client.
	Roll *float64 `json:"roll,omitempty"`
	Kept *bool    `json:"kept,omitempty"`
}

// Explain decides for client c of service svc, like Decide, and records
// every step. It allocates; it is not for hot paths.
func Explain(s *Snapshot, svc int, c *Client) (Decision, *Explanation) {
	sv := &s.Services[svc]
	tr := &Explanation{
		Service: sv.Name,
		Policy:  sv.Kind.String(),
		Mode:    sv.Mode.String(),
		Client: ClientInfo{
			Addr:        c.Addr.String(),
			Country:     c.Country,
			Continent:   c.Continent,
			Subdivision: c.Subdivision,
		},
		Regions: make([]RegionVerdict, len(sv.Regions)),
	}
	if c.Location.Valid {
		lat, lon := c.Location.Lat, c.Location.Lon
		tr.Client.Lat, tr.Client.Lon = &lat, &lon
	}
	if sv.Kind == Geo {
		if r := matchRule(sv, c); r >= 0 {
			tr.Rule = fmt.Sprintf("#%d match [%s]", r+1, strings.Join(sv.Rules[r].Match, " "))
			if sv.Rules[r].Fence {
				tr.Rule += " fenced"
			}
		} else {
			tr.Rule = "no rule matched"
		}
	}
	var d Decision
	decide(s, svc, c, &d, tr)
	return d, tr
}

func (tr *Explanation) noteEligibility(p int, r *Region, dial int, inFence, ok bool) {
	v := &tr.Regions[p]
	v.Name, v.Up, v.Override, v.Dial, v.Eligible = r.Name, r.Up, r.Override.String(), dial, ok
	switch {
	case !inFence:
		v.Reason = "outside the fenced rule's regions"
	case r.Override == ForceDown:
		v.Reason = "forced down"
	case dial == 0:
		v.Reason = "dial 0 (drained)"
	case r.Override == ForceUp:
		v.Reason = "forced up"
	case !r.Up:
		v.Reason = "health checks failing"
	default:
		v.Reason = "healthy"
	}
}

func (tr *Explanation) score(p int, v float64, unit string) {
	tr.Regions[p].Score, tr.Regions[p].Unit = &v, unit
}

func (tr *Explanation) rolled(p int, r float64, kept bool) {
	if r >= 0 {
		tr.Regions[p].Roll = &r
	}
	tr.Regions[p].Kept = &kept
}

func (tr *Explanation) finish(s *Snapshot, d *Decision) {
	tr.FailOpen, tr.NoData = d.FailOpen, d.NoData
	tr.Order = make([]string, 0, d.N)
	for _, ri := range d.Regions() {
		tr.Order = append(tr.Order, s.Regions[ri].Name)
	}
	switch {
	case d.N == 0:
	case d.FailOpen:
		tr.Outcome = "no region eligible; failing open to " + tr.Order[0]
	default:
		tr.Outcome = "answer " + tr.Order[0]
	}
}
