package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meridian-edge/meridian/shift"
)

// Member is one node's registration as the fleet sees it.
type Member struct {
	Name       string         `json:"name"`
	Version    string         `json:"version"`
	Addresses  []string       `json:"addresses"`
	Location   *Location      `json:"location,omitempty"`
	Ready      bool           `json:"ready"`
	ConfigHash string         `json:"config_hash"`
	Started    time.Time      `json:"started"`
	Updated    time.Time      `json:"updated"` // when the node last published its record
	Regions    []RegionStatus `json:"regions"`
	// Counters are the node's cumulative proxy figures by "service/region",
	// for a fleet-wide shift guard.
	Counters map[string]Counters `json:"counters,omitempty"`
}

// Location is where a node stands, in degrees.
type Location struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// RegionStatus is a node's own view of one region.
type RegionStatus struct {
	Name      string  `json:"name"`
	Up        bool    `json:"up"`
	RTTMillis float64 `json:"rtt_ms"`
}

// Counters are shift.Counters with a compact JSON form: the latency
// histogram as a list of [bucket, count] pairs for the non-empty buckets.
type Counters shift.Counters

type countersJSON struct {
	Requests uint64      `json:"requests"`
	Errors   uint64      `json:"errors"`
	Latency  [][2]uint64 `json:"latency,omitempty"`
}

// MarshalJSON writes the non-empty buckets only.
func (c Counters) MarshalJSON() ([]byte, error) {
	j := countersJSON{Requests: c.Requests, Errors: c.Errors}
	for i, n := range c.Latency {
		if n > 0 {
			j.Latency = append(j.Latency, [2]uint64{uint64(i), n})
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; a bucket out of range is an
// error.
func (c *Counters) UnmarshalJSON(b []byte) error {
	var j countersJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Counters{Requests: j.Requests, Errors: j.Errors}
	for _, p := range j.Latency {
		if p[0] >= shift.NBuckets {
			return fmt.Errorf("latency bucket %d out of range", p[0])
		}
		c.Latency[p[0]] += p[1]
	}
	return nil
}

// decodeMember parses a registration; it must name a node.
func decodeMember(b []byte) (Member, error) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return Member{}, fmt.Errorf("parsing member: %w", err)
	}
	if m.Name == "" {
		return Member{}, errors.New("member without a name")
	}
	return m, nil
}

// RegionDown reports whether m sees region down, and whether m reports on
// it at all.
func (m *Member) RegionDown(region string) (down, reported bool) {
	for _, r := range m.Regions {
		if r.Name == region {
			return !r.Up, true
		}
	}
	return false, false
}
