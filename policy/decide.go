package policy

import (
	"math"
)

// Hysteresis is the share by which a region must beat another's estimated
// round-trip time (or distance) to overtake it in a latency ranking;
// regions closer than that keep their previous order, so that small
// changes in measurements do not flap answers.
const Hysteresis = 0.10

// Decision is the outcome of Decide. It is a value with fixed-size arrays
// so that deciding does not allocate.
type Decision struct {
	// Order holds indexes into Snapshot.Regions, best first; N are valid.
	Order [MaxRegions]int
	N     int
	// FailOpen is set when no region was eligible and the answer falls back
	// to every region that is not forced down.
	FailOpen bool
	// NoData is set when nothing may be answered: the service fails closed
	// and no region is eligible, or every region is drained or forced down.
	NoData bool
	// ByLocation is set when the order depended on the client's location.
	ByLocation bool
	// ByHash is set when the order depended on the client's dial roll (its
	// /24 or /56).
	ByHash bool
}

// Regions returns the ordered region indexes.
func (d *Decision) Regions() []int { return d.Order[:d.N] }

// Decide fills d with the decision for client c of service svc (an index
// into s.Services). It does not allocate.
func Decide(s *Snapshot, svc int, c *Client, d *Decision) {
	decide(s, svc, c, d, nil)
}

// work is the per-decision scratch space, kept on the stack.
type work struct {
	pos    [MaxRegions]int     // candidate positions in Service.Regions
	metric [MaxRegions]float64 // ranking metric per candidate slot
	n      int
}

func decide(s *Snapshot, svc int, c *Client, d *Decision, tr *Explanation) {
	*d = Decision{}
	sv := &s.Services[svc]

	// The rule a geo service applies decides the universe of regions.
	rule := -1
	if sv.Kind == Geo {
		rule = matchRule(sv, c)
		if rule >= 0 {
			d.ByLocation = true
		}
	}
	fenced := rule >= 0 && sv.Rules[rule].Fence
	inUniverse := func(p int) bool {
		if !fenced {
			return true
		}
		for _, q := range sv.Rules[rule].Regions {
			if q == p {
				return true
			}
		}
		return false
	}

	// Eligible: up (or forced up), not forced down, dial > 0.
	var w work
	for p, ri := range sv.Regions {
		r := &s.Regions[ri]
		ok := inUniverse(p) && sv.Dials[p] > 0 && r.Override != ForceDown &&
			(r.Override == ForceUp || r.Up)
		if tr != nil {
			tr.noteEligibility(p, r, sv.Dials[p], inUniverse(p), ok)
		}
		if ok {
			w.pos[w.n] = p
			w.n++
		}
	}
	if w.n == 0 {
		if sv.FailClosed {
			d.NoData = true
			if tr != nil {
				tr.finish(s, d)
				tr.Outcome = "no region eligible; service fails closed (nodata)"
			}
			return
		}
		// Fail open: every region with dial > 0 not forced down.
		for p, ri := range sv.Regions {
			r := &s.Regions[ri]
			if inUniverse(p) && sv.Dials[p] > 0 && r.Override != ForceDown {
				w.pos[w.n] = p
				w.n++
			}
		}
		if w.n == 0 {
			d.NoData = true
			if tr != nil {
				tr.finish(s, d)
				tr.Outcome = "no region eligible and none to fail open to (all drained or forced down)"
			}
			return
		}
		d.FailOpen = true
	}

	switch sv.Kind {
	case Failover:
		// Service order already.
	case Geo:
		rankGeo(s, sv, c, rule, &w, d, tr)
	case Latency:
		rankLatency(s, sv, c, &w, d, tr)
	case Weighted:
		rankWeighted(s, sv, c, &w, d, tr)
	}

	if sv.Kind != Weighted {
		applyDials(s, sv, c, &w, d, tr)
	}
	for i := 0; i < w.n; i++ {
		d.Order[i] = sv.Regions[w.pos[i]]
	}
	d.N = w.n
	if tr != nil {
		tr.finish(s, d)
	}
}

// matchRule returns the most specific geo rule matching c (subdivision,
// then country, then continent, then default; the first rule wins a tie),
// or -1.
func matchRule(sv *Service, c *Client) int {
	best, bestSpec := -1, -1
	for i := range sv.Rules {
		for _, m := range sv.Rules[i].Match {
			spec := specificity(m, c)
			if spec > bestSpec {
				best, bestSpec = i, spec
			}
		}
	}
	return best
}

// specificity scores how specifically code m matches c: 3 subdivision,
// 2 country, 1 continent, 0 default, -1 no match.
func specificity(m string, c *Client) int {
	switch {
	case m == "DEFAULT":
		return 0
	case len(m) > 3 && m[2] == '-':
		if c.Subdivision != "" && m[:2] == c.Country && m[3:] == c.Subdivision {
			return 3
		}
	case isContinent(m):
		if m == c.Continent {
			return 1
		}
	case len(m) == 2 && m == c.Country:
		return 2
	}
	return -1
}

// isContinent reports whether m is a continent code. AF, AS, NA and SA are
// also country codes (Afghanistan, American Samoa, Namibia, Saudi
// Arabia); in a geo rule they mean the continent, as operators of geo DNS
// expect.
func isContinent(m string) bool {
	switch m {
	case "AF", "AN", "AS", "EU", "NA", "OC", "SA":
		return true
	}
	return false
}

// rankGeo puts the rule's regions first in the rule's order, then the
// other candidates by distance from the client.
func rankGeo(s *Snapshot, sv *Service, c *Client, rule int, w *work, d *Decision, tr *Explanation) {
	from := c.Location
	if !from.Valid {
		from = s.Node
	}
	for i := 0; i < w.n; i++ {
		p := w.pos[i]
		w.metric[i] = math.Inf(1)
		if rule >= 0 {
			for k, q := range sv.Rules[rule].Regions {
				if q == p {
					w.metric[i] = -float64(len(sv.Rules[rule].Regions) - k)
				}
			}
		}
		if math.IsInf(w.metric[i], 1) {
			if from.Valid && s.Regions[sv.Regions[p]].Location.Valid {
				w.metric[i] = distanceKm(from, s.Regions[sv.Regions[p]].Location)
				d.ByLocation = d.ByLocation || c.Location.Valid
			} else {
				w.metric[i] = math.MaxFloat64
			}
		}
		if tr != nil {
			tr.score(p, w.metric[i], "geo")
		}
	}
	sortStable(w)
}

// rankLatency orders candidates by estimated RTT: measured from the node
// for proxy services, else by distance from the client (or the node).
func rankLatency(s *Snapshot, sv *Service, c *Client, w *work, d *Decision, tr *Explanation) {
	if sv.Mode == ModeProxy && len(sv.RTTOrder) > 0 {
		for i := 0; i < w.n; i++ {
			w.metric[i] = float64(len(sv.RTTOrder))
			for k, q := range sv.RTTOrder {
				if q == w.pos[i] {
					w.metric[i] = float64(k)
				}
			}
			if tr != nil {
				tr.score(w.pos[i], float64(s.Regions[sv.Regions[w.pos[i]]].RTT.Microseconds())/1000, "ms")
			}
		}
		sortStable(w)
		return
	}
	from := c.Location
	if sv.Mode == ModeProxy || !from.Valid {
		from = s.Node
	} else {
		d.ByLocation = true
	}
	if !from.Valid {
		return // regions order
	}
	for i := 0; i < w.n; i++ {
		loc := s.Regions[sv.Regions[w.pos[i]]].Location
		w.metric[i] = math.MaxFloat64
		if loc.Valid {
			w.metric[i] = distanceKm(from, loc)
		}
		if tr != nil {
			tr.score(w.pos[i], w.metric[i], "km")
		}
	}
	hysteresisSort(w)
}

// rankWeighted orders candidates by weighted rendezvous hashing: each
// region draws -ln(u)/weight from the client's hash and the lowest wins, so
// a region's share of clients is its weight over the sum of weights.
func rankWeighted(s *Snapshot, sv *Service, c *Client, w *work, d *Decision, tr *Explanation) {
	key := clientKey(c.Addr)
	d.ByHash = w.n > 1
	for i := 0; i < w.n; i++ {
		p := w.pos[i]
		weight := float64(sv.Dials[p])
		w.metric[i] = -math.Log(unit(key, sv.Salt, s.Regions[sv.Regions[p]].hash)) / weight
		if tr != nil {
			tr.score(p, w.metric[i], "weighted draw")
		}
	}
	sortStable(w)
}

// applyDials walks the ranking: a region with dial d keeps d% of the
// clients reaching it (by the client's roll for that region); the rest
// spill to the next. A client no region keeps stays with the first. The
// kept region moves to the front; the others keep their order as
// fallbacks.
func applyDials(s *Snapshot, sv *Service, c *Client, w *work, d *Decision, tr *Explanation) {
	key := clientKey(c.Addr)
	for i := 0; i < w.n; i++ {
		p := w.pos[i]
		dial := sv.Dials[p]
		if dial >= 100 {
			if tr != nil {
				tr.rolled(p, -1, true)
			}
			moveToFront(w, i)
			return
		}
		d.ByHash = true
		r := roll(key, sv.Salt, s.Regions[sv.Regions[p]].hash)
		kept := r < dial*100
		if tr != nil {
			tr.rolled(p, float64(r)/100, kept)
		}
		if kept {
			moveToFront(w, i)
			return
		}
	}
}

func moveToFront(w *work, i int) {
	p := w.pos[i]
	copy(w.pos[1:i+1], w.pos[:i])
	w.pos[0] = p
}

// sortStable sorts candidates by metric ascending, ties keeping their
// current (priority) order. Insertion sort: n is small and it does not
// allocate.
func sortStable(w *work) {
	for i := 1; i < w.n; i++ {
		for j := i; j > 0 && w.metric[j] < w.metric[j-1]; j-- {
			w.swap(j)
		}
	}
}

// hysteresisSort sorts candidates by metric, but a candidate overtakes the
// one ahead of it only when it beats it by more than Hysteresis. "Beats"
// is a strict partial order, so the bubbling ends.
func hysteresisSort(w *work) {
	for swapped := true; swapped; {
		swapped = false
		for j := 1; j < w.n; j++ {
			if beats(w.metric[j], w.metric[j-1]) {
				w.swap(j)
				swapped = true
			}
		}
	}
}

func beats(a, b float64) bool { return a < b*(1-Hysteresis) }

func (w *work) swap(j int) {
	w.pos[j], w.pos[j-1] = w.pos[j-1], w.pos[j]
	w.metric[j], w.metric[j-1] = w.metric[j-1], w.metric[j]
}

// RankByRTT returns positions 0..len(rtt)-1 ordered by RTT with
// hysteresis, starting from prev (the previous ranking; nil = priority
// order). Unknown RTTs (0) rank last. The node calls it when it builds a
// snapshot, so proxy latency rankings change only on a clear win.
func RankByRTT(prev []int, rtt []float64) []int {
	var w work
	if len(rtt) > MaxRegions {
		rtt = rtt[:MaxRegions]
	}
	var placed [MaxRegions]bool
	for _, p := range prev {
		if p >= 0 && p < len(rtt) && !placed[p] {
			placed[p] = true
			w.pos[w.n] = p
			w.n++
		}
	}
	for p := range rtt {
		if !placed[p] {
			w.pos[w.n] = p
			w.n++
		}
	}
	for i := 0; i < w.n; i++ {
		w.metric[i] = rtt[w.pos[i]]
		if w.metric[i] <= 0 {
			w.metric[i] = math.MaxFloat64
		}
	}
	hysteresisSort(&w)
	return append([]int(nil), w.pos[:w.n]...)
}

// distanceKm is the great-circle distance between two points.
func distanceKm(a, b Point) float64 {
	const r = 6371.0
	const rad = math.Pi / 180
	la1, la2 := a.Lat*rad, b.Lat*rad
	dla := la2 - la1
	dlo := (b.Lon - a.Lon) * rad
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}
