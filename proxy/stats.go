package proxy

import (
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/shift"
)

// regionStats are the cumulative figures of one service in one region that
// a shift guard reads: requests answered, errors among them, and their
// durations in the shift package's fine-grained histogram. They live in the
// service and region's regionMetrics, which Update keeps by name, so a
// guard's window survives routing table rebuilds. Recording takes three
// atomic adds and allocates nothing.
type regionStats struct {
	requests atomic.Uint64
	errors   atomic.Uint64
	latency  [shift.NBuckets]atomic.Uint64
}

// record counts a request answered with code after d. Errors are the
// answers a client sees as the upstream's failure: any 5xx, including the
// 502 and 504 the proxy sends when no upstream answered (connect failure,
// timeout). A client that went away (499) is a request, not an error.
func (s *regionStats) record(code int, d time.Duration) {
	s.requests.Add(1)
	if code >= 500 && code <= 599 {
		s.errors.Add(1)
	}
	s.latency[shift.Bucket(d)].Add(1)
}

// read copies the figures. Errors are read before requests, so a copy
// taken while requests are recorded never has more errors than requests.
func (s *regionStats) read() shift.Counters {
	var c shift.Counters
	c.Errors = s.errors.Load()
	c.Requests = s.requests.Load()
	for i := range s.latency {
		c.Latency[i] = s.latency[i].Load()
	}
	return c
}

// RegionStats returns a copy of the cumulative figures of service in
// region since the pair was first routed: zero for a pair the proxy does
// not route (a dns-mode service, a region the service does not use).
func (p *Proxy) RegionStats(service, region string) shift.Counters {
	p.mu.Lock()
	rm := p.pairs[pairKey{service: service, region: region}]
	p.mu.Unlock()
	if rm == nil {
		return shift.Counters{}
	}
	return rm.stats.read()
}
