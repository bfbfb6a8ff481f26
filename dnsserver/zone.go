package dnsserver

import (
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-edge/meridian/config"
)

// SOA field defaults for zones built without config.Parse.
const (
	defaultSOATTL  = 3600
	defaultRefresh = 7200
	defaultRetry   = 3600
	defaultExpire  = 1209600
)

// zoneData is a zone's static content: the SOA (serial still to be set),
// the apex NS set and every other record, owners in canonical form.
type zoneData struct {
	name   string // canonical, "example.com."
	soa    *dns.SOA
	ns     []dns.RR
	rrs    []dns.RR
	hash   uint64    // of everything above but the serial
	mtime  time.Time // newest modification time of the zone's files
	negTTL uint32
}

// loadZone builds the static content of z. Records come from z.RRs, which
// config.Parse fills from the zone file and the inline records; a config
// built in code may leave RRs empty and give inline Records, which are
// parsed here.
func loadZone(z *config.Zone) (*zoneData, error) {
	name := dns.CanonicalName(z.Name)
	if _, err := wireName(name); err != nil {
		return nil, err
	}
	if len(z.Nameservers) == 0 {
		return nil, fmt.Errorf("no nameservers")
	}
	ttl := clamp32(orDefault(z.SOA.TTL, defaultSOATTL))
	zd := &zoneData{name: name, negTTL: min(ttl, clamp32(z.SOA.NegativeTTL))}
	email := z.SOA.Email
	if email == "" {
		email = "hostmaster@" + strings.TrimSuffix(name, ".")
	}
	rname, err := mailboxName(email)
	if err != nil {
		return nil, err
	}
	zd.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      dns.CanonicalName(z.Nameservers[0]),
		Mbox:    rname,
		Refresh: clamp32(orDefault(z.SOA.Refresh, defaultRefresh)),
		Retry:   clamp32(orDefault(z.SOA.Retry, defaultRetry)),
		Expire:  clamp32(orDefault(z.SOA.Expire, defaultExpire)),
		Minttl:  clamp32(z.SOA.NegativeTTL),
	}
	seenNS := map[string]bool{}
	for _, n := range z.Nameservers {
		t := dns.CanonicalName(n)
		if _, err := wireName(t); err != nil {
			return nil, fmt.Errorf("nameserver: %w", err)
		}
		if !seenNS[t] {
			seenNS[t] = true
			zd.ns = append(zd.ns, &dns.NS{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl}, Ns: t})
		}
	}

	rrs := z.RRs
	if len(rrs) == 0 && len(z.Records) > 0 {
		if rrs, err = parseRecords(name, ttl, z.Records); err != nil {
			return nil, err
		}
	}
	for _, rr := range rrs {
		h := rr.Header()
		owner := dns.CanonicalName(h.Name)
		switch {
		case h.Class != dns.ClassINET:
			return nil, fmt.Errorf("record %q: class %s, want IN", rr.String(), dns.ClassToString[h.Class])
		case !dns.IsSubDomain(name, owner):
			return nil, fmt.Errorf("record %q: %s is outside the zone", rr.String(), owner)
		case h.Rrtype == dns.TypeSOA:
			continue // the SOA is synthesized from the zone's settings
		case h.Rrtype == dns.TypeNS && owner == name:
			t := dns.CanonicalName(rr.(*dns.NS).Ns)
			if !seenNS[t] {
				seenNS[t] = true
				zd.ns = append(zd.ns, &dns.NS{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: h.Ttl}, Ns: t})
			}
			continue
		}
		cp := dns.Copy(rr)
		cp.Header().Name = owner
		if !slices.ContainsFunc(zd.rrs, func(o dns.RR) bool { return dns.IsDuplicate(o, cp) }) {
			zd.rrs = append(zd.rrs, cp)
		}
	}
	if z.File != "" {
		if fi, err := os.Stat(z.File); err == nil {
			zd.mtime = fi.ModTime()
		}
	}
	zd.hash = zd.contentHash()
	return zd, nil
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// parseRecords parses master-file lines relative to zone.
func parseRecords(zone string, ttl uint32, lines []string) ([]dns.RR, error) {
	var out []dns.RR
	for _, line := range lines {
		zp := dns.NewZoneParser(strings.NewReader(line), zone, "")
		zp.SetDefaultTTL(ttl)
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			out = append(out, rr)
		}
		if err := zp.Err(); err != nil {
			return nil, fmt.Errorf("record %q: %w", line, err)
		}
	}
	return out, nil
}

// mailboxName turns an email address into an SOA RNAME: the local part
// becomes the first label, its dots escaped.
func mailboxName(email string) (string, error) {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" {
		return "", fmt.Errorf("soa email %q is not an email address", email)
	}
	n := dns.CanonicalName(strings.ReplaceAll(local, ".", `\.`) + "." + domain)
	if _, err := wireName(n); err != nil {
		return "", fmt.Errorf("soa email %q: %w", email, err)
	}
	return n, nil
}

// contentHash digests everything served from the zone but the serial, in
// an order that does not depend on how the records were listed.
func (zd *zoneData) contentHash() uint64 {
	soa := *zd.soa
	soa.Serial = 0
	lines := []string{soa.String()}
	for _, rr := range zd.ns {
		lines = append(lines, rr.String())
	}
	for _, rr := range zd.rrs {
		lines = append(lines, rr.String())
	}
	slices.Sort(lines)
	h := fnv.New64a()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// serialState is what the server remembers of a zone between tables.
type serialState struct {
	serial uint32
	hash   uint64
}

// nextSerial derives a zone's serial: the newest modification time of the
// config file and the zone's files in Unix seconds (now when there are no
// files), kept while the content is unchanged, and raised to the previous
// serial + 1 when the content changed but the time did not rise.
func nextSerial(prev serialState, seen bool, hash uint64, newest time.Time, now time.Time) uint32 {
	base := newest
	if base.IsZero() {
		base = now
	}
	serial := uint32(base.Unix()) //nolint:gosec // G115: serials wrap (RFC 1982)
	if !seen {
		return serial
	}
	if hash == prev.hash {
		return prev.serial
	}
	if int32(serial-prev.serial) <= 0 { //nolint:gosec // G115: RFC 1982 serial comparison
		return prev.serial + 1
	}
	return serial
}
