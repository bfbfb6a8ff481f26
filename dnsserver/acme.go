package dnsserver

import (
	"fmt"
	"maps"
	"slices"

	"github.com/miekg/dns"
)

// acmeTTL is the TTL of ACME challenge records: short, since a challenge
// may be retried with a new value.
const acmeTTL = 10

// dynSet is an immutable set of dynamic TXT records (ACME DNS-01
// challenges), replaced whole on every change.
type dynSet struct {
	// names maps the wire name of every record owner, and of every
	// ancestor up to its zone's apex (empty non-terminals), to the owner's
	// values (none for ancestors).
	names map[string]*dynName
}

type dynName struct {
	name   string // canonical
	values []string
}

func (d *dynSet) has(w string) bool {
	if d == nil {
		return false
	}
	_, ok := d.names[w]
	return ok
}

// txt returns the dynamic TXT records owned by w.
func (d *dynSet) txt(w string) []dns.RR {
	if d == nil {
		return nil
	}
	dn := d.names[w]
	if dn == nil {
		return nil
	}
	out := make([]dns.RR, 0, len(dn.values))
	for _, v := range dn.values {
		out = append(out, &dns.TXT{
			Hdr: dns.RR_Header{Name: dn.name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: acmeTTL},
			Txt: []string{v},
		})
	}
	return out
}

// dynRecord is one presented name and the apex of its zone.
type dynRecord struct {
	name   string
	apex   string // wire
	values []string
}

// PresentTXT serves a TXT record with value at fqdn, which must lie in a
// configured zone, until CleanupTXT removes it (the ACME DNS-01 seam).
// Several values may be present at one name. Safe for concurrent use.
func (s *Server) PresentTXT(fqdn, value string) error {
	w, err := wireName(fqdn)
	if err != nil {
		return fmt.Errorf("presenting txt record: %w", err)
	}
	t := s.table.Load()
	if t == nil {
		return fmt.Errorf("presenting txt record at %q: no zones loaded", fqdn)
	}
	var apex string
	if n := t.st.names[w]; n != nil {
		apex = n.zone.wire
	} else if encl := t.st.closest(w); encl != nil {
		apex = encl.zone.wire
	} else {
		return fmt.Errorf("presenting txt record at %q: not in a configured zone", fqdn)
	}
	if len(value) > 255 {
		return fmt.Errorf("presenting txt record at %q: value longer than 255 octets", fqdn)
	}
	s.dynMu.Lock()
	defer s.dynMu.Unlock()
	r := s.dynRecs[w]
	if r == nil {
		r = &dynRecord{name: dns.CanonicalName(fqdn), apex: apex}
		s.dynRecs[w] = r
	}
	if !slices.Contains(r.values, value) {
		r.values = append(r.values, value)
	}
	s.publishDyn()
	return nil
}

// CleanupTXT stops serving the TXT record with value at fqdn. Removing a
// record that is not there is not an error.
func (s *Server) CleanupTXT(fqdn, value string) error {
	w, err := wireName(fqdn)
	if err != nil {
		return fmt.Errorf("cleaning up txt record: %w", err)
	}
	s.dynMu.Lock()
	defer s.dynMu.Unlock()
	r := s.dynRecs[w]
	if r == nil {
		return nil
	}
	r.values = slices.DeleteFunc(r.values, func(v string) bool { return v == value })
	if len(r.values) == 0 {
		delete(s.dynRecs, w)
	}
	s.publishDyn()
	return nil
}

// publishDyn rebuilds the dynamic set from s.dynRecs; s.dynMu is held.
func (s *Server) publishDyn() {
	if len(s.dynRecs) == 0 {
		s.dyn.Store(nil)
		return
	}
	d := &dynSet{names: map[string]*dynName{}}
	for _, w := range slices.Sorted(maps.Keys(s.dynRecs)) {
		r := s.dynRecs[w]
		d.names[w] = &dynName{name: r.name, values: slices.Clone(r.values)}
		for p := parent(w); len(p) > len(r.apex); p = parent(p) {
			if _, ok := d.names[p]; !ok {
				d.names[p] = &dynName{name: nameOf(p)}
			}
		}
	}
	s.dyn.Store(d)
}
