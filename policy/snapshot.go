package policy

import (
	"fmt"
	"net/netip"
	"time"
)

// MaxRegions is the most regions one service may steer among. It bounds
// the fixed-size arrays that keep Decide free of allocations.
const MaxRegions = 32

// Kind is a steering policy.
type Kind uint8

// The steering policies of a service.
const (
	Latency Kind = iota
	Geo
	Failover
	Weighted
)

var kindNames = [...]string{"latency", "geo", "failover", "weighted"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown policy %q", s)
}

// Mode says what a service's answers point at.
type Mode uint8

// Service modes.
const (
	// ModeDNS services answer with region endpoints.
	ModeDNS Mode = iota
	// ModeProxy services answer with the node's addresses; the proxy steers.
	ModeProxy
)

func (m Mode) String() string {
	if m == ModeProxy {
		return "proxy"
	}
	return "dns"
}

// Override is an operator's forced health for a region.
type Override uint8

// Region overrides.
const (
	Auto Override = iota
	ForceUp
	ForceDown
)

func (o Override) String() string {
	switch o {
	case ForceUp:
		return "up"
	case ForceDown:
		return "down"
	}
	return "auto"
}

// Point is a location on the globe in degrees.
type Point struct {
	Lat, Lon float64
	Valid    bool
}

// Region is one region's state as seen by this node.
type Region struct {
	Name     string
	Location Point
	// Up is the health checks' verdict (true for regions without checks).
	Up       bool
	Override Override
	// RTT is the round-trip time measured from this node; 0 is unknown.
	RTT time.Duration

	hash uint64
}

// Rule is one geo rule of a service.
type Rule struct {
	// Match holds upper-case codes: a continent ("EU"), a country ("DE"),
	// a subdivision ("US-CA") or "DEFAULT".
	Match []string
	// Regions are positions in Service.Regions, in preference order.
	Regions []int
	Fence   bool
}

// Service is a steered service.
type Service struct {
	Name string
	Kind Kind
	Mode Mode
	// Regions are indexes into Snapshot.Regions in priority order.
	Regions []int
	// Dials holds the traffic dial (0..100) of each entry of Regions; for
	// Weighted services they are the weights.
	Dials []int
	Rules []Rule
	// FailClosed answers nothing when no region is eligible, instead of
	// failing open.
	FailClosed bool
	// Salt makes the per-client dial rolls differ between services.
	Salt uint64
	// RTTOrder is the node-wide ranking of Regions positions by measured RTT,
	// for proxy-mode latency services; see RankByRTT. Empty falls back to
	// distance from the node.
	RTTOrder []int
	// Writer is the index into Snapshot.Regions of the writes primary when
	// HasWriter is set (single-writer routing of proxy-mode services).
	// Decide ignores it; the proxy confines writing requests to it.
	Writer    int
	HasWriter bool
}

// Snapshot is everything a decision depends on, besides the client. It is
// never modified after NewSnapshot returns.
type Snapshot struct {
	Regions  []Region
	Services []Service
	// Node is where this node stands, used when a client's location is
	// unknown.
	Node Point
}

// NewSnapshot checks the cross references of regions and services and
// returns a snapshot ready for Decide. It takes ownership of the slices.
func NewSnapshot(regions []Region, services []Service, node Point) (*Snapshot, error) {
	for i := range regions {
		regions[i].hash = HashString(regions[i].Name)
	}
	for si := range services {
		s := &services[si]
		if len(s.Regions) == 0 || len(s.Regions) > MaxRegions {
			return nil, fmt.Errorf("service %q: %d regions, want 1..%d", s.Name, len(s.Regions), MaxRegions)
		}
		if len(s.Dials) != len(s.Regions) {
			return nil, fmt.Errorf("service %q: %d dials for %d regions", s.Name, len(s.Dials), len(s.Regions))
		}
		for _, r := range s.Regions {
			if r < 0 || r >= len(regions) {
				return nil, fmt.Errorf("service %q: region index %d out of range", s.Name, r)
			}
		}
		for _, d := range s.Dials {
			if d < 0 || d > 100 {
				return nil, fmt.Errorf("service %q: dial %d outside 0..100", s.Name, d)
			}
		}
		for _, ru := range s.Rules {
			for _, p := range ru.Regions {
				if p < 0 || p >= len(s.Regions) {
					return nil, fmt.Errorf("service %q: rule region position %d out of range", s.Name, p)
				}
			}
		}
		for _, p := range s.RTTOrder {
			if p < 0 || p >= len(s.Regions) {
				return nil, fmt.Errorf("service %q: rtt order position %d out of range", s.Name, p)
			}
		}
	}
	return &Snapshot{Regions: regions, Services: services, Node: node}, nil
}

// Service returns the index of the service named name, or -1.
func (s *Snapshot) Service(name string) int {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return i
		}
	}
	return -1
}

// Region returns the index of the region named name, or -1.
func (s *Snapshot) Region(name string) int {
	for i := range s.Regions {
		if s.Regions[i].Name == name {
			return i
		}
	}
	return -1
}

// Client is who a decision is made for.
type Client struct {
	// Addr is the client address (an ECS subnet address, a resolver or a
	// TCP peer); its /24 (IPv4) or /56 (IPv6) feeds the dial rolls.
	Addr        netip.Addr
	Country     string // ISO alpha-2, upper case
	Continent   string // AF AN AS EU NA OC SA
	Subdivision string // without the country, e.g. "CA"
	Location    Point
}
