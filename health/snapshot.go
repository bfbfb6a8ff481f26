package health

import "time"

// Snapshot is an immutable view of every endpoint's and region's health. A
// new one is published after every probe result or passive ejection that
// changes anything; a published Snapshot is never modified.
type Snapshot struct {
	// Regions[i] is the state of the i-th configured region (the index of
	// config.Config.Regions given to New or Update).
	Regions []RegionState
}

// RegionState is the health of one region.
type RegionState struct {
	Name string
	// Up is true while at least min_healthy endpoints are up and not
	// ejected. Endpoints of health type none count as up unless ejected.
	Up bool
	// RTT is the mean probe RTT (EWMA) of the region's min_healthy fastest
	// healthy endpoints: the round-trip time of the best endpoints the
	// region needs to be up. Fewer healthy endpoints with a measurement
	// are averaged as they are; 0 means unknown.
	RTT time.Duration
	// Endpoints[k] is the state of the region's k-th configured endpoint.
	Endpoints []EndpointState
}

// EndpointState is the health of one endpoint.
type EndpointState struct {
	// Name is the endpoint's URL (or address), as in the metric labels.
	Name string
	// Up is the verdict of the probes after rise/fall: false until the
	// first probe result arrives. Always true for health type none.
	Up bool
	// Ejected is true while the endpoint is passively ejected after
	// repeated proxy errors; it lasts at least until Until.
	Ejected bool
	Until   time.Time
	// RTT is the EWMA of passing probes' round-trip times; 0 unknown.
	RTT time.Duration
	// LastCheck is when the last probe result arrived; zero before the
	// first one.
	LastCheck time.Time
	// LastResult describes the last probe: "ok", "status 503", "timeout",
	// "connection refused", "connection reset", "tls: ...", "dns: ...";
	// "" before the first probe.
	LastResult string
}

// EndpointUp reports whether endpoint k of region i may take traffic: up and
// not ejected. A nil Snapshot counts every endpoint up; indexes out of
// range count as down.
func (s *Snapshot) EndpointUp(region, endpoint int) bool {
	if s == nil {
		return true
	}
	if region < 0 || region >= len(s.Regions) {
		return false
	}
	eps := s.Regions[region].Endpoints
	if endpoint < 0 || endpoint >= len(eps) {
		return false
	}
	return eps[endpoint].Up && !eps[endpoint].Ejected
}

// RegionUp reports whether region i is up. A nil Snapshot counts every
// region up; an index out of range counts as down.
func (s *Snapshot) RegionUp(region int) bool {
	if s == nil {
		return true
	}
	if region < 0 || region >= len(s.Regions) {
		return false
	}
	return s.Regions[region].Up
}
