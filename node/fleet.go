package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/fleet"
	"github.com/meridian-edge/meridian/internal/version"
	"github.com/prometheus/client_golang/prometheus"
)

// startFleet registers the node in the fleet (etcd backend only). A name
// another live node holds stops the start.
func (n *Node) startFleet(ctx context.Context, cfg *config.Config) error {
	if n.etcd == nil {
		return nil
	}
	m, err := fleet.New(fleet.Options{
		Client:  n.etcd,
		Prefix:  cfg.State.Etcd.Prefix,
		Name:    cfg.Node.Name,
		TTL:     cfg.Fleet.NodeTTL.D(),
		Report:  n.fleetRecord,
		Timeout: cfg.State.Etcd.DialTimeout.D(),
		Logger:  n.opts.Logger,
		Now:     n.now,
	})
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return fmt.Errorf("joining the fleet: %w", err)
	}
	n.members = m
	return nil
}

// fleetRecord is this node's registration as of now. Its region views are
// left out until the first round of health checks is done, so that a node
// starting up does not sway the fleet's verdicts.
func (n *Node) fleetRecord() fleet.Member {
	n.mu.Lock()
	cfg, hc, hash := n.cfg, n.health, n.cfgHash
	n.mu.Unlock()
	m := fleet.Member{
		Version:    version.Version,
		Ready:      n.Ready(),
		ConfigHash: hash,
		Started:    n.started.UTC(),
		Addresses:  make([]string, 0, len(cfg.Node.Addresses)),
	}
	for _, a := range cfg.Node.Addresses {
		m.Addresses = append(m.Addresses, a.String())
	}
	if l := cfg.Node.Location; l != nil {
		m.Location = &fleet.Location{Lat: l.Lat, Lon: l.Lon}
	}
	if hc != nil && hc.Ready() {
		m.Regions = ownRegions(hc.Snapshot())
	}
	if n.proxy != nil {
		for i := range cfg.Services {
			s := &cfg.Services[i]
			if s.Mode != "proxy" {
				continue
			}
			for _, r := range s.Regions {
				c := n.proxy.RegionStats(s.Name, r)
				if c.Requests == 0 {
					continue
				}
				if m.Counters == nil {
					m.Counters = map[string]fleet.Counters{}
				}
				m.Counters[s.Name+"/"+r] = fleet.Counters(c)
			}
		}
	}
	return m
}

// Nodes lists the fleet's live nodes by name. A node without a fleet (or
// not registered yet) lists itself.
func (n *Node) Nodes() []fleet.Member {
	var list []fleet.Member
	if n.members != nil {
		list, _ = n.members.Members()
	}
	name := n.View().Config.Node.Name
	if !slices.ContainsFunc(list, func(m fleet.Member) bool { return m.Name == name }) {
		self := n.fleetRecord()
		self.Name, self.Updated = name, n.now().UTC()
		list = append(list, self)
		slices.SortFunc(list, func(a, b fleet.Member) int {
			switch {
			case a.Name < b.Name:
				return -1
			case a.Name > b.Name:
				return 1
			}
			return 0
		})
	}
	return list
}

// configHash digests what the nodes of a fleet must share: regions, zones
// and services, without the lines they sit at (node and listen sections may
// differ, and shift them) and without health settings, which may differ
// from node to node.
func configHash(cfg *config.Config) string {
	regions := slices.Clone(cfg.Regions)
	for i := range regions {
		regions[i].Line = 0
		regions[i].Health = config.Health{}
		regions[i].Endpoints = slices.Clone(regions[i].Endpoints)
		for k := range regions[i].Endpoints {
			regions[i].Endpoints[k].Line = 0
		}
	}
	services := slices.Clone(cfg.Services)
	for i := range services {
		services[i].Line = 0
		services[i].Geo = slices.Clone(services[i].Geo)
		for k := range services[i].Geo {
			services[i].Geo[k].Line = 0
		}
	}
	type zone struct {
		Name, Email string
		Nameservers []string
		TTL, Neg    int
		Records     []string
	}
	zones := make([]zone, 0, len(cfg.Zones))
	for _, z := range cfg.Zones {
		zz := zone{Name: z.Name, Email: z.SOA.Email, Nameservers: z.Nameservers, TTL: z.SOA.TTL, Neg: z.SOA.NegativeTTL}
		for _, rr := range z.RRs {
			zz.Records = append(zz.Records, rr.String())
		}
		zones = append(zones, zz)
	}
	b, err := json.Marshal(struct {
		Regions  []config.Region
		Zones    []zone
		Services []config.Service
	}{regions, zones, services})
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// fleetCollector reads the live node count at scrape time.
type fleetCollector struct{ n *Node }

var fleetNodesDesc = prometheus.NewDesc("meridian_fleet_nodes",
	"Live nodes of the fleet as this node sees them (1 for a node alone).", nil, nil)

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- fleetNodesDesc }

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.View() == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(fleetNodesDesc, prometheus.GaugeValue, float64(len(c.n.Nodes())))
}
