package config

import (
	"net/netip"
	"time"
)

// Defaults of the dns section.
const (
	DefaultRRLResponsesPerSecond = 20
	DefaultRRLWindow             = 15 * time.Second
	DefaultRRLSlip               = 2
	DefaultRRLIPv4Prefix         = 24
	DefaultRRLIPv6Prefix         = 56
	DefaultRRLMaxTableSize       = 100000
)

// Bounds of the rrl keys, as BIND has them where it has them.
const (
	maxRRLResponsesPerSecond = 1000000
	maxRRLWindow             = time.Hour
	maxRRLSlip               = 10
	maxRRLTableSize          = 10000000
)

// DNS tunes the authoritative DNS server.
type DNS struct {
	RRL     *RRL `yaml:"rrl"`     // nil: no response rate limiting
	Cookies bool `yaml:"cookies"` // RFC 7873 server cookies; default true
}

// RRL configures response rate limiting of UDP answers: per client prefix
// and kind of response, at most ResponsesPerSecond, averaged over Window.
type RRL struct {
	ResponsesPerSecond int            `yaml:"responses_per_second"` // default 20
	Window             Duration       `yaml:"window"`               // default 15s
	Slip               int            `yaml:"slip"`                 // every Slip-th limited answer goes out truncated; 0 = none; default 2
	IPv4Prefix         int            `yaml:"ipv4_prefix"`          // default 24
	IPv6Prefix         int            `yaml:"ipv6_prefix"`          // default 56
	Exempt             []netip.Prefix `yaml:"exempt"`               // never limited; stored masked
	MaxTableSize       int            `yaml:"max_table_size"`       // entries tracked; default 100000
}

// dnsDefaults fills the dns section: cookies on unless the file turns
// them off, and the rrl keys the file leaves out.
func dnsDefaults(c *Config, pos *positions) {
	if !pos.set("dns.cookies") && !c.DNS.Cookies {
		c.DNS.Cookies = true
	}
	r := c.DNS.RRL
	if r == nil {
		return
	}
	const p = "dns.rrl."
	setInt(&r.ResponsesPerSecond, pos, p+"responses_per_second", DefaultRRLResponsesPerSecond)
	setDuration(&r.Window, pos, p+"window", DefaultRRLWindow)
	setInt(&r.Slip, pos, p+"slip", DefaultRRLSlip)
	setInt(&r.IPv4Prefix, pos, p+"ipv4_prefix", DefaultRRLIPv4Prefix)
	setInt(&r.IPv6Prefix, pos, p+"ipv6_prefix", DefaultRRLIPv6Prefix)
	setInt(&r.MaxTableSize, pos, p+"max_table_size", DefaultRRLMaxTableSize)
	for i, e := range r.Exempt {
		r.Exempt[i] = netip.PrefixFrom(e.Addr().Unmap(), max(e.Bits()-unmapBits(e.Addr()), 0)).Masked()
	}
}

// unmapBits is how many prefix bits an IPv4-mapped address loses when it
// is written as IPv4.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// dns checks the dns section.
func (v *validator) dns(c *Config) {
	r := c.DNS.RRL
	if r == nil {
		return
	}
	const p = "dns.rrl."
	v.between(p+"responses_per_second", r.ResponsesPerSecond, 1, maxRRLResponsesPerSecond)
	if r.Window.D() < time.Second || r.Window.D() > maxRRLWindow {
		v.add(p+"window", "dns.rrl.window must be between 1s and %s, got %s", maxRRLWindow, r.Window)
	}
	v.between(p+"slip", r.Slip, 0, maxRRLSlip)
	v.between(p+"ipv4_prefix", r.IPv4Prefix, 1, 32)
	v.between(p+"ipv6_prefix", r.IPv6Prefix, 1, 128)
	v.between(p+"max_table_size", r.MaxTableSize, 1, maxRRLTableSize)
	seen := map[netip.Prefix]string{}
	for i, e := range r.Exempt {
		ip := itemPath(p+"exempt", i)
		if first, dup := seen[e]; dup {
			v.add(ip, "dns.rrl.exempt: duplicate prefix %s%s", e, v.firstAt(first))
			continue
		}
		seen[e] = ip
	}
}

// between reports an integer outside lo..hi; its path names it.
func (v *validator) between(path string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(path, "%s %d is outside %d..%d", path, n, lo, hi)
	}
}
