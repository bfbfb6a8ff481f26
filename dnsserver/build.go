package dnsserver

import (
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
)

// static is the part of a table that depends only on the config: zones,
// names and their precomputed answers. It is rebuilt when the config
// changes and shared by the tables built for the same config.
type static struct {
	cfg   *config.Config
	names map[string]*node // by lower-case wire name
	zones []*zone
	none  *zoneCounters // queries outside the zones
	// chaos is the node's name, answered to CHAOS TXT id.server and
	// hostname.bind.
	chaos   string
	serials map[string]serialState
}

// zone is one authoritative zone of a table.
type zone struct {
	name    string // canonical
	wire    string
	soa     *dns.SOA
	negSOA  *dns.SOA // TTL = min(SOA TTL, negative TTL)
	negWire []byte   // negSOA without owner, for NXDOMAIN on the fast path
	ctr     *zoneCounters
}

// node is a name that exists in a zone: it owns records, is a service
// hostname, or has descendants (an empty non-terminal).
type node struct {
	name string // canonical
	wire string
	zone *zone
	sets map[uint16][]dns.RR
	svc  int   // index of the service answering the name, or -1
	wild *node // the wildcard child "*.name", if any
	// entries are the precomputed answers by query type; deflt answers
	// every other type, or is nil when those go to the general path.
	entries []entry
	deflt   *entry
}

// entry is a precomputed answer for one name and query type: the answer
// and authority sections as they follow the question, and for steered
// names where the per-query records go.
type entry struct {
	qtype      uint16
	rcode      uint8
	an, ns, ex uint16
	// body ends with the additional records, exLen bytes, which are left
	// out of an answer they would not let fit.
	body  []byte
	exLen int
	// steer >= 0: the service whose records are appended after body
	// (which then holds answer records only); their owner is the name at
	// message offset ptr; tail is the authority section (the SOA) used
	// when the steered records come out empty.
	steer int
	fam   int
	ptr   uint16
	tail  []byte
}

func (n *node) entry(qtype uint16) *entry {
	for i := range n.entries {
		if n.entries[i].qtype == qtype {
			return &n.entries[i]
		}
	}
	return n.deflt
}

// buildStatic builds the static part of a table for cfg. prev holds the
// serials of the previous build.
func buildStatic(cfg *config.Config, prev map[string]serialState, now time.Time, m *metrics) (*static, error) {
	st := &static{
		cfg:     cfg,
		names:   map[string]*node{},
		none:    m.zoneCounters(zoneNone),
		chaos:   cfg.Node.Name,
		serials: map[string]serialState{},
	}
	var cfgTime time.Time
	if cfg.File != "" {
		if fi, err := os.Stat(cfg.File); err == nil {
			cfgTime = fi.ModTime()
		}
	}
	byWire := map[string]*zone{}
	data := make([]*zoneData, len(cfg.Zones))
	for i := range cfg.Zones {
		zd, err := loadZone(&cfg.Zones[i])
		if err != nil {
			return nil, fmt.Errorf("zone %q: %w", cfg.Zones[i].Name, err)
		}
		newest := cfgTime
		if zd.mtime.After(newest) {
			newest = zd.mtime
		}
		p, seen := prev[zd.name]
		zd.soa.Serial = nextSerial(p, seen, zd.hash, newest, now)
		st.serials[zd.name] = serialState{serial: zd.soa.Serial, hash: zd.hash}

		z := &zone{name: zd.name, soa: zd.soa, ctr: m.zoneCounters(trimDot(zd.name))}
		z.wire, _ = wireName(zd.name)
		if byWire[z.wire] != nil {
			return nil, fmt.Errorf("zone %q: configured twice", cfg.Zones[i].Name)
		}
		neg := dns.Copy(zd.soa).(*dns.SOA)
		neg.Hdr.Ttl = zd.negTTL
		z.negSOA = neg
		var err2 error
		if z.negWire, err2 = rrNoOwner(neg); err2 != nil {
			return nil, fmt.Errorf("zone %q: %w", cfg.Zones[i].Name, err2)
		}
		byWire[z.wire] = z
		st.zones = append(st.zones, z)
		data[i] = zd
	}
	zoneOf := func(w string) *zone {
		for p := w; p != ""; p = parent(p) {
			if z := byWire[p]; z != nil {
				return z
			}
		}
		return nil
	}

	for i, zd := range data {
		z := st.zones[i]
		apex := st.node(z.wire, z.name, z)
		apex.add(z.soa)
		for _, rr := range zd.ns {
			apex.add(rr)
		}
		for _, rr := range zd.rrs {
			w, err := wireName(rr.Header().Name)
			if err != nil {
				return nil, fmt.Errorf("zone %q: %w", cfg.Zones[i].Name, err)
			}
			if zoneOf(w) != z {
				continue // below a zone configured on its own
			}
			if c, ok := rr.(*dns.CNAME); ok {
				c = dns.Copy(c).(*dns.CNAME)
				c.Target = dns.CanonicalName(c.Target)
				rr = c
			}
			st.node(w, rr.Header().Name, z).add(rr)
		}
	}
	for si := range cfg.Services {
		for _, h := range cfg.Services[si].Hostnames {
			w, err := wireName(h)
			if err != nil {
				return nil, fmt.Errorf("service %q: %w", cfg.Services[si].Name, err)
			}
			z := zoneOf(w)
			if z == nil {
				return nil, fmt.Errorf("service %q: hostname %q is in no configured zone", cfg.Services[si].Name, h)
			}
			n := st.node(w, dns.CanonicalName(h), z)
			if n.svc >= 0 && n.svc != si {
				return nil, fmt.Errorf("service %q: hostname %q is also a hostname of service %q", cfg.Services[si].Name, h, cfg.Services[n.svc].Name)
			}
			n.svc = si
		}
	}
	if err := st.finish(); err != nil {
		return nil, err
	}
	return st, nil
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

// node returns the node for w, creating it.
func (st *static) node(w, name string, z *zone) *node {
	n := st.names[w]
	if n == nil {
		n = &node{name: dns.CanonicalName(name), wire: w, zone: z, svc: -1}
		st.names[w] = n
	}
	return n
}

func (n *node) add(rr dns.RR) {
	if n.sets == nil {
		n.sets = map[uint16][]dns.RR{}
	}
	t := rr.Header().Rrtype
	n.sets[t] = append(n.sets[t], rr)
}

// finish adds empty non-terminals, links wildcards, checks for conflicts
// and precomputes every node's answers.
func (st *static) finish() error {
	for _, w := range slices.Collect(maps.Keys(st.names)) {
		n := st.names[w]
		for p := parent(w); len(p) > len(n.zone.wire); p = parent(p) {
			if st.names[p] != nil {
				break
			}
			st.names[p] = &node{name: nameOf(p), wire: p, zone: n.zone, svc: -1}
		}
	}
	for w, n := range st.names {
		if len(w) > 2 && w[0] == 1 && w[1] == '*' {
			if p := st.names[parent(w)]; p != nil {
				p.wild = n
			}
		}
		if c := n.sets[dns.TypeCNAME]; len(c) > 0 {
			if len(c) > 1 || len(n.sets) > 1 {
				return fmt.Errorf("zone %q: %s has a CNAME and other records", trimDot(n.zone.name), trimDot(n.name))
			}
		}
		if n.svc >= 0 {
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME} {
				if len(n.sets[t]) > 0 {
					return fmt.Errorf("zone %q: %s has static %s records but is the hostname of service %q",
						trimDot(n.zone.name), trimDot(n.name), dns.TypeToString[t], st.cfg.Services[n.svc].Name)
				}
			}
		}
	}
	zoneTypes := map[*zone]map[uint16]bool{}
	for _, n := range st.names {
		if zoneTypes[n.zone] == nil {
			zoneTypes[n.zone] = map[uint16]bool{dns.TypeA: true, dns.TypeAAAA: true, dns.TypeTXT: true, dns.TypeMX: true, dns.TypeHTTPS: true}
		}
		for t := range n.sets {
			zoneTypes[n.zone][t] = true
		}
	}
	for _, n := range st.names {
		if err := st.precompute(n, zoneTypes[n.zone]); err != nil {
			return fmt.Errorf("zone %q: %s: %w", trimDot(n.zone.name), trimDot(n.name), err)
		}
	}
	return nil
}

// nameOf returns the canonical presentation form of wire name w.
func nameOf(w string) string {
	s, _, err := dns.UnpackDomainName([]byte(w), 0)
	if err != nil {
		return "."
	}
	return dns.CanonicalName(s)
}

// precompute fills n.entries and n.deflt.
func (st *static) precompute(n *node, zoneTypes map[uint16]bool) error {
	types := map[uint16]bool{}
	for t := range n.sets {
		types[t] = true
	}
	if n.svc >= 0 {
		types[dns.TypeA], types[dns.TypeAAAA], types[dns.TypeCNAME] = true, true, true
	}
	chained := len(n.sets[dns.TypeCNAME]) > 0
	if chained {
		maps.Copy(types, zoneTypes)
	}
	for _, t := range slices.Sorted(maps.Keys(types)) {
		e, err := st.makeEntry(n, t)
		if err != nil {
			return err
		}
		n.entries = append(n.entries, e)
	}
	if !chained {
		e, err := st.makeEntry(n, 0) // type 0 has no records anywhere: NODATA
		if err != nil {
			return err
		}
		n.deflt = &e
	}
	return nil
}

// makeEntry precomputes the answer for n and qtype.
func (st *static) makeEntry(n *node, qtype uint16) (entry, error) {
	res := st.resolve(n.wire, n.name, qtype, nil)
	e := entry{qtype: qtype, rcode: res.rcode, steer: -1}
	qw := len(n.wire)
	var an, ns, ex section
	for _, rr := range res.ex {
		if err := ex.add(rr, n.name, qw); err != nil {
			return e, err
		}
	}
	for _, rr := range res.an {
		if err := an.add(rr, n.name, qw); err != nil {
			return e, err
		}
	}
	for _, rr := range res.ns {
		if err := ns.add(rr, n.name, qw); err != nil {
			return e, err
		}
	}
	if res.steer >= 0 {
		fam, _ := famOf(qtype)
		e.steer, e.fam = res.steer, fam
		ptr, full, err := ownerFor(res.steerOwner, n.name, qw)
		if err != nil {
			return e, err
		}
		if full != "" {
			// The owner is the target of the last CNAME, whose RDATA is
			// the name in full at the end of the answer records.
			off := headerLen + qw + 4 + len(an.b) - len(full)
			if off >= 0x4000 || len(an.b) < len(full) || string(an.b[len(an.b)-len(full):]) != full {
				return e, fmt.Errorf("steered answer for %s cannot point at %s", n.name, res.steerOwner)
			}
			ptr = pointerTo(off)
		}
		e.ptr = ptr
		var tail section
		if err := tail.add(n.zone.negSOA, n.name, qw); err != nil {
			return e, err
		}
		e.tail = tail.b
	}
	e.body = append(append(an.b, ns.b...), ex.b...)
	e.an, e.ns, e.ex, e.exLen = an.n, ns.n, ex.n, len(ex.b)
	return e, nil
}

// appendPtr appends a compression pointer to b.
func appendPtr(b []byte, off uint16) []byte { return binary.BigEndian.AppendUint16(b, off) }
