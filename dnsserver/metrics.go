package dnsserver

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/internal/promreg"
)

// qtypeNames is the fixed set of qtype label values; every other type
// counts as "other".
var qtypeNames = [...]string{"A", "AAAA", "CNAME", "NS", "SOA", "TXT", "MX", "SRV", "CAA", "ANY", "HTTPS", "other"}

const qtypeOther = len(qtypeNames) - 1

// qtypeSlot maps query types below 256 to their label slot; caaSlot is
// CAA's, the one listed type above 255.
var qtypeSlot, caaSlot = func() (t [256]uint8, caa int) {
	for i := range t {
		t[i] = uint8(qtypeOther)
	}
	for i, n := range qtypeNames[:qtypeOther] {
		if v := dns.StringToType[n]; v < 256 {
			t[v] = uint8(i)
		} else if v == dns.TypeCAA {
			caa = i
		}
	}
	return t, caa
}()

func qtypeIndex(qt uint16) int {
	switch {
	case qt < 256:
		return int(qtypeSlot[qt])
	case qt == dns.TypeCAA:
		return caaSlot
	}
	return qtypeOther
}

// rcodeNames are the response codes the server gives, as label values.
var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "BADCOOKIE"}

const numRcodes = len(rcodeNames)

func rcodeIndex(rc uint8) int {
	switch {
	case rc <= dns.RcodeRefused:
		return int(rc)
	case rc == dns.RcodeBadCookie:
		return numRcodes - 1
	}
	return numRcodes - 2 // BADVERS, the other extended code given
}

// zoneNone labels queries outside every configured zone.
const zoneNone = "none"

// metrics holds the server's collectors. Queries are counted through
// counters resolved once per zone, qtype and rcode and then cached, so that
// counting a query looks up no labels.
type metrics struct {
	queries  *prometheus.CounterVec
	answers  *prometheus.CounterVec
	panics   prometheus.Counter
	duration *prometheus.HistogramVec
	// durationBy is duration's child per transport (udp, tcp), resolved
	// once so that observing an answer looks up no labels.
	durationBy [2]prometheus.Observer
	rrl        *prometheus.CounterVec
	rrlDrop    prometheus.Counter
	rrlSlip    prometheus.Counter

	mu    sync.Mutex
	zones map[string]*zoneCounters
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_dns_queries_total",
			Help: "DNS queries answered, by zone, query type and response code.",
		}, []string{"zone", "qtype", "rcode"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_dns_answers_total",
			Help: "Steered DNS answers, by service and the first region answered.",
		}, []string{"service", "region"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_dns_panics_total",
			Help: "Queries whose handling panicked; each got SERVFAIL or was dropped.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_dns_request_duration_seconds",
			Help:    "Time from reading a DNS query off the socket to handing its answer back, by transport (udp, tcp); queries read in one batch share the batch's time.",
			Buckets: dnsDurationBuckets,
		}, []string{"proto"}),
		rrl: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_dns_rrl_total",
			Help: "UDP responses limited by response rate limiting, by action: drop (not sent) or slip (sent truncated, or BADCOOKIE).",
		}, []string{"action"}),
		zones: map[string]*zoneCounters{},
	}
	m.bindDuration()
	defer func() {
		m.rrlDrop = m.rrl.WithLabelValues("drop")
		m.rrlSlip = m.rrl.WithLabelValues("slip")
	}()
	if reg == nil {
		return m, nil
	}
	var err error
	m.queries, err = promreg.Register(reg, m.queries)
	if err != nil {
		return nil, err
	}
	m.answers, err = promreg.Register(reg, m.answers)
	if err != nil {
		return nil, err
	}
	m.panics, err = promreg.Register(reg, m.panics)
	if err != nil {
		return nil, err
	}
	m.duration, err = promreg.Register(reg, m.duration)
	if err != nil {
		return nil, err
	}
	m.bindDuration()
	m.rrl, err = promreg.Register(reg, m.rrl)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// dnsDurationBuckets span an answer from the precomputed tables (a
// microsecond or less) to a slow general-path answer, in seconds.
var dnsDurationBuckets = []float64{.000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1}

func (m *metrics) bindDuration() {
	m.durationBy[0] = m.duration.WithLabelValues("udp")
	m.durationBy[1] = m.duration.WithLabelValues("tcp")
}

// observe records that n answers took d each. Transports read the clock
// once per batch of queries read together, not once per query: a clock
// read costs as much as a cached answer on some virtual machines.
func (m *metrics) observe(tcp bool, d time.Duration, n int) {
	i := 0
	if tcp {
		i = 1
	}
	o, v := m.durationBy[i], d.Seconds()
	for range n {
		o.Observe(v)
	}
}

// zoneCounters returns the counter block of zone (zoneNone for queries
// outside the zones). Blocks outlive table generations.
func (m *metrics) zoneCounters(zone string) *zoneCounters {
	m.mu.Lock()
	defer m.mu.Unlock()
	z := m.zones[zone]
	if z == nil {
		z = &zoneCounters{vec: m.queries, zone: zone}
		m.zones[zone] = z
	}
	return z
}

type counterRef struct{ c prometheus.Counter }

// zoneCounters caches one zone's query counters by qtype and rcode slot.
type zoneCounters struct {
	vec   *prometheus.CounterVec
	zone  string
	slots [len(qtypeNames)][numRcodes]atomic.Pointer[counterRef]
}

// inc counts a query of type qtype answered with rcode.
func (z *zoneCounters) inc(qtype uint16, rcode uint8) {
	qi, ri := qtypeIndex(qtype), rcodeIndex(rcode)
	slot := &z.slots[qi][ri]
	c := slot.Load()
	if c == nil {
		// Once per series: a race resolves the same counter twice.
		c = &counterRef{z.vec.WithLabelValues(z.zone, qtypeNames[qi], rcodeNames[ri])}
		slot.Store(c)
	}
	c.c.Inc()
}
