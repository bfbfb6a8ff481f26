package node

import (
	"github.com/meridian-edge/meridian/fleet"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/policy"
	"github.com/prometheus/client_golang/prometheus"
)

// ownRegions is this node's own view of every region.
func ownRegions(hs *health.Snapshot) []fleet.RegionStatus {
	if hs == nil {
		return nil
	}
	out := make([]fleet.RegionStatus, len(hs.Regions))
	for i, r := range hs.Regions {
		out[i] = fleet.RegionStatus{Name: r.Name, Up: r.Up, RTTMillis: ms(r.RTT)}
	}
	return out
}

// fleetVerdicts is the fleet's view of every region (config order) from
// the live members' registrations and this node's checks; nil when the node
// has no fleet, the member list is stale (etcd away) or its first round of
// checks is not done: the node then decides alone.
func (n *Node) fleetVerdicts(regions []policy.Region) []fleet.Verdict {
	if n.members == nil || n.health == nil || !n.health.Ready() {
		return nil
	}
	members, fresh := n.members.Members()
	if !fresh {
		return nil
	}
	own := make([]fleet.RegionStatus, len(regions))
	for i, r := range regions {
		own[i] = fleet.RegionStatus{Name: r.Name, Up: r.Up}
	}
	return fleet.Consensus(n.cfg.Node.Name, own, members, n.cfg.Fleet.Quorum)
}

// dnsRegions returns the regions DNS answers use: under fleet.health
// quorum, each region's health is the fleet's verdict; otherwise (and
// when the fleet agrees with this node) the regions as they are. The proxy
// always uses this node's own view: it connects from here.
func (n *Node) dnsRegions(regions []policy.Region, verdicts []fleet.Verdict) ([]policy.Region, bool) {
	if n.cfg.Fleet.Health != "quorum" || len(verdicts) != len(regions) {
		return regions, false
	}
	var out []policy.Region
	for i, v := range verdicts {
		if v.Up == regions[i].Up {
			continue
		}
		if out == nil {
			out = append([]policy.Region(nil), regions...)
		}
		out[i].Up = v.Up
	}
	if out == nil {
		return regions, false
	}
	return out, true
}

// fleetMoved reports whether the fleet's verdicts differ from those the
// published view was built with.
func (n *Node) fleetMoved(v *View) bool {
	if n.members == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cur := n.fleetVerdicts(v.Policy.Regions)
	if len(cur) != len(v.Fleet) {
		return true
	}
	for i := range cur {
		if cur[i].Up != v.Fleet[i].Up || cur[i].Reporting != v.Fleet[i].Reporting || cur[i].Down != v.Fleet[i].Down {
			return true
		}
	}
	return false
}

// fleetUpCollector reads the fleet's view of every region at scrape time.
type fleetUpCollector struct{ n *Node }

var regionUpFleetDesc = prometheus.NewDesc("meridian_region_up_fleet",
	"Share (0..1) of the live nodes reporting on a region that see it up; this node's own view when it is alone.",
	[]string{"region"}, nil)

func (c *fleetUpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- regionUpFleetDesc }

func (c *fleetUpCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.n.View()
	if v == nil {
		return
	}
	for i, r := range v.Policy.Regions {
		share := 0.0
		if r.Up {
			share = 1
		}
		if i < len(v.Fleet) {
			share = v.Fleet[i].UpShare
		}
		ch <- prometheus.MustNewConstMetric(regionUpFleetDesc, prometheus.GaugeValue, share, r.Name)
	}
}
