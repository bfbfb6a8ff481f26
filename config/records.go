package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// zones reads each zone's file (relative to the config's folder; the
// resolved path is stored back) and inline records into Zone.RRs.
func (r *resolver) zones(c *Config) {
	owners := map[string]string{} // service hostname → service
	for _, s := range c.Services {
		for _, h := range s.Hostnames {
			if _, ok := owners[h]; !ok {
				owners[h] = s.Name
			}
		}
	}
	for i := range c.Zones {
		z := &c.Zones[i]
		p := itemPath("zones", i)
		z.File = r.path(z.File)
		if !validDomain(z.Name) {
			continue // reported by the validator
		}
		zr := &zoneRecords{r: r, zone: z, owners: owners}
		if z.File != "" {
			fileLine := r.pos.line(p + ".file")
			data, err := readFile(z.File, maxZoneFile)
			if err != nil {
				r.errs.add(fileLine, "zone %q: reading zone file: %v", z.Name, err)
			} else {
				zr.parse(string(data), "", func(l int) (string, int) { return z.File, l }, func(msg string) {
					r.errs.add(fileLine, "zone %q: zone file %s: %s", z.Name, z.File, msg)
				})
			}
		}
		for j, rec := range z.Records {
			line := r.pos.line(itemPath(p+".records", j))
			if strings.TrimSpace(rec) == "" {
				r.errs.add(line, "zone %q: record is empty", z.Name)
				continue
			}
			n := zr.parse(rec, fmt.Sprintf("record %q: ", rec), func(l int) (string, int) { return r.errs.file, line + max(l, 1) - 1 }, func(msg string) {
				r.errs.add(line, "zone %q: record %q: %s", z.Name, rec, msg)
			})
			if n == 0 && !zr.failed {
				r.errs.add(line, "zone %q: record %q holds no record", z.Name, rec)
			}
		}
	}
}

// zoneRecords parses master-file text for one zone.
type zoneRecords struct {
	r      *resolver
	zone   *Zone
	owners map[string]string
	failed bool // the last parse stopped on a syntax error
}

var dnsErrorRE = regexp.MustCompile(`^(?:dns: )?(.*) at line: (\d+):\d+$`)

// parse appends the records of text to the zone and returns how many it
// found. A syntax error is reported at the file and line that at maps the
// error's line of text to, after label; bad reports a record that parsed
// but is not allowed.
func (zr *zoneRecords) parse(text, label string, at func(int) (string, int), bad func(string)) int {
	z := zr.zone
	zp := dns.NewZoneParser(strings.NewReader(text), z.Name+".", "")
	zp.SetDefaultTTL(uint32(min(max(z.SOA.TTL, 0), math.MaxInt32)))
	n := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		n++
		rr.Header().Name = strings.ToLower(rr.Header().Name)
		if msg := zr.check(rr); msg != "" {
			bad(msg)
			continue
		}
		z.RRs = append(z.RRs, rr)
	}
	zr.failed = false
	if err := zp.Err(); err != nil {
		zr.failed = true
		msg, line := err.Error(), 0
		if m := dnsErrorRE.FindStringSubmatch(msg); m != nil {
			msg = m[1]
			line, _ = strconv.Atoi(m[2])
		}
		file, l := at(line)
		zr.r.errs.addIn(file, max(l, 1), "zone %q: %s%s", z.Name, label, strings.TrimPrefix(msg, "dns: "))
	}
	return n
}

// check returns why rr may not be served from this zone, or "".
func (zr *zoneRecords) check(rr dns.RR) string {
	h := rr.Header()
	name := strings.TrimSuffix(h.Name, ".")
	switch {
	case !dns.IsSubDomain(zr.zone.Name+".", h.Name):
		return fmt.Sprintf("%s is outside the zone", name)
	case h.Rrtype == dns.TypeSOA:
		return "SOA records come from the zone's soa settings"
	case h.Rrtype == dns.TypeNS && strings.EqualFold(h.Name, zr.zone.Name+"."):
		// An imported zone file's apex NS set names the old provider's
		// servers: merged with nameservers it would keep them in the
		// delegation, with their own TTL.
		return "the zone's apex NS records come from its nameservers setting; remove this record (list meridian's servers under nameservers)"
	}
	if svc, ok := zr.owners[name]; ok {
		switch h.Rrtype {
		case dns.TypeA, dns.TypeAAAA, dns.TypeCNAME:
			return fmt.Sprintf("%s %s conflicts with service %q, which answers that name", name, dns.TypeToString[h.Rrtype], svc)
		}
	}
	return ""
}

func quote(s string) string { return strconv.Quote(s) }
