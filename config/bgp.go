package config

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// BGP configures the node's anycast announcements (SPEC section 9). A nil
// *BGP (no bgp key) means no BGP at all.
type BGP struct {
	ASN         int64          `yaml:"asn"`
	RouterID    netip.Addr     `yaml:"router_id"`   // default: the first IPv4 of node.addresses
	ListenPort  int            `yaml:"listen_port"` // default -1: only connect out
	Peers       []BGPPeer      `yaml:"peers"`
	Announce    []netip.Prefix `yaml:"announce"`    // default: node.addresses as /32 and /128
	Communities []string       `yaml:"communities"` // "65000:100", "65000:1:2" (large), no-export, no-advertise
	// NextHop holds at most one IPv4 and one IPv6 address: the next hop of
	// the prefixes of that family on every session. Default: the session's
	// local address. A session carries the prefixes of its own family, and
	// those of the other family only when NextHop names an address of it.
	NextHop   []netip.Addr `yaml:"next_hop"`
	SelfCheck SelfCheck    `yaml:"self_check"`
}

// BGPPeer is one BGP session. At most one of PasswordEnv and PasswordFile
// is set; Password holds the resolved TCP MD5 key after Load.
type BGPPeer struct {
	Address      netip.Addr `yaml:"address"`
	Port         int        `yaml:"port"` // default 179
	ASN          int64      `yaml:"asn"`  // equal to bgp.asn: iBGP
	LocalAddress netip.Addr `yaml:"local_address"`
	PasswordEnv  string     `yaml:"password_env"`
	PasswordFile string     `yaml:"password_file"`
	HoldTime     Duration   `yaml:"hold_time"` // default 9s
	// Multihop is the TTL of an eBGP session to a peer that is not
	// directly connected (a route server); 0 = directly connected.
	Multihop int    `yaml:"multihop"`
	Password string `yaml:"-"`
}

// SelfCheck configures how the node checks its own listeners before and
// while it announces (SPEC section 9).
type SelfCheck struct {
	Interval Duration `yaml:"interval"` // default 1s
	Timeout  Duration `yaml:"timeout"`  // each probe; default 500ms
	Fall     int      `yaml:"fall"`     // failed rounds in a row that withdraw; default 3
	Rise     int      `yaml:"rise"`     // passed rounds in a row that allow an announcement; default 2
	// HoldDown is how long after the last failed round the prefixes stay
	// withdrawn, however many rounds pass meanwhile; default 10s.
	HoldDown Duration `yaml:"hold_down"`
}

// Defaults of the bgp section.
const (
	DefaultBGPPort           = 179
	DefaultBGPListenPort     = -1
	DefaultBGPHoldTime       = 9 * time.Second
	DefaultSelfCheckInterval = time.Second
	DefaultSelfCheckTimeout  = 500 * time.Millisecond
	DefaultSelfCheckFall     = 3
	DefaultSelfCheckRise     = 2
	DefaultSelfCheckHoldDown = 10 * time.Second
)

// asTrans is AS_TRANS (RFC 6793), which no speaker may use as its own.
const asTrans = 23456

func bgpDefaults(c *Config, pos *positions) {
	b := c.BGP
	if b == nil {
		return
	}
	if !b.RouterID.IsValid() {
		for _, a := range c.Node.Addresses {
			if a.Is4() {
				b.RouterID = a
				break
			}
		}
	}
	b.RouterID = b.RouterID.Unmap()
	if !pos.set("bgp.listen_port") && b.ListenPort == 0 {
		b.ListenPort = DefaultBGPListenPort
	}
	if !pos.set("bgp.announce") && len(b.Announce) == 0 {
		for _, a := range c.Node.Addresses {
			b.Announce = append(b.Announce, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	for i := range b.Peers {
		p := &b.Peers[i]
		pp := itemPath("bgp.peers", i)
		p.Address, p.LocalAddress = p.Address.Unmap(), p.LocalAddress.Unmap()
		setInt(&p.Port, pos, pp+".port", DefaultBGPPort)
		setDuration(&p.HoldTime, pos, pp+".hold_time", DefaultBGPHoldTime)
	}
	for i := range b.NextHop {
		b.NextHop[i] = b.NextHop[i].Unmap()
	}
	s := &b.SelfCheck
	setDuration(&s.Interval, pos, "bgp.self_check.interval", DefaultSelfCheckInterval)
	setDuration(&s.Timeout, pos, "bgp.self_check.timeout", DefaultSelfCheckTimeout)
	setInt(&s.Fall, pos, "bgp.self_check.fall", DefaultSelfCheckFall)
	setInt(&s.Rise, pos, "bgp.self_check.rise", DefaultSelfCheckRise)
	setDuration(&s.HoldDown, pos, "bgp.self_check.hold_down", DefaultSelfCheckHoldDown)
}

// bgpSecrets fills BGPPeer.Password from password_env or password_file.
func (r *resolver) bgpSecrets(c *Config) {
	if c.BGP == nil {
		return
	}
	for i := range c.BGP.Peers {
		p := &c.BGP.Peers[i]
		pp := itemPath("bgp.peers", i)
		who := "bgp peer " + p.Address.String()
		switch {
		case p.PasswordEnv != "" && p.PasswordFile != "":
			continue // the validator reports it
		case p.PasswordEnv != "":
			line := r.pos.line(pp + ".password_env")
			v, ok := os.LookupEnv(p.PasswordEnv)
			switch {
			case !ok:
				r.errs.add(line, "%s: environment variable %s is not set", who, p.PasswordEnv)
			case strings.TrimSpace(v) == "":
				r.errs.add(line, "%s: environment variable %s is empty", who, p.PasswordEnv)
			default:
				p.Password = v
			}
		case p.PasswordFile != "":
			line := r.pos.line(pp + ".password_file")
			p.PasswordFile = r.path(p.PasswordFile)
			data, err := readFile(p.PasswordFile, maxSecretFile)
			if err != nil {
				r.errs.add(line, "%s: reading password file: %v", who, err)
				continue
			}
			v := strings.TrimRight(string(data), " \t\r\n")
			if v == "" {
				r.errs.add(line, "%s: password file %s is empty", who, p.PasswordFile)
				continue
			}
			p.Password = v
		}
	}
}

// maxMD5Key is the longest TCP MD5 signature key Linux accepts
// (TCP_MD5SIG_MAXKEYLEN).
const maxMD5Key = 80

func (v *validator) bgp(c *Config) {
	b := c.BGP
	if b == nil {
		return
	}
	v.asn("bgp.asn", "bgp.asn", b.ASN)
	switch {
	case !b.RouterID.IsValid():
		v.add("bgp.router_id", "bgp.router_id is required when node.addresses holds no IPv4 address")
	case !b.RouterID.Is4() || b.RouterID.IsUnspecified():
		v.add("bgp.router_id", "bgp.router_id %s must be a non-zero IPv4 address", b.RouterID)
	}
	if b.ListenPort != -1 && (b.ListenPort < 1 || b.ListenPort > 65535) {
		v.add("bgp.listen_port", "bgp.listen_port %d is outside 1..65535; use -1 to only connect out", b.ListenPort)
	}
	if len(b.Peers) == 0 {
		v.add("bgp", "bgp.peers: at least one peer is required")
	}
	nextHop := v.nextHops(b)
	v.announce(c)
	seen := map[netip.Addr]string{}
	for i := range b.Peers {
		p := &b.Peers[i]
		pp := itemPath("bgp.peers", i)
		if msg := checkUnicast(p.Address); msg != "" {
			v.add(pp+".address", "bgp.peers: address: %s", msg)
			continue
		}
		who := "bgp peer " + p.Address.String()
		if first, dup := seen[p.Address]; dup {
			v.add(pp+".address", "bgp.peers: duplicate peer %s%s", p.Address, v.firstAt(first))
		}
		seen[p.Address] = pp + ".address"
		if p.Port < 1 || p.Port > 65535 {
			v.add(pp+".port", "%s: port %d is outside 1..65535", who, p.Port)
		}
		v.asn(pp+".asn", who+": asn", p.ASN)
		if la := p.LocalAddress; la.IsValid() {
			if msg := checkUnicast(la); msg != "" {
				v.add(pp+".local_address", "%s: local_address: %s", who, msg)
			} else if la.Is4() != p.Address.Is4() {
				v.add(pp+".local_address", "%s: local_address %s is not of the peer's address family", who, la)
			}
		}
		if p.PasswordEnv != "" && p.PasswordFile != "" {
			v.add(pp, "%s: set at most one of password_env and password_file", who)
		}
		if len(p.Password) > maxMD5Key {
			v.add(pp, "%s: the password is %d bytes long; TCP MD5 keys hold at most %d", who, len(p.Password), maxMD5Key)
		}
		h := p.HoldTime.D()
		if h < 3*time.Second || h > math.MaxUint16*time.Second || h%time.Second != 0 {
			v.add(pp+".hold_time", "%s: hold_time must be whole seconds from 3s to 65535s, got %s", who, p.HoldTime)
		}
		if p.Multihop < 0 || p.Multihop > 255 {
			v.add(pp+".multihop", "%s: multihop %d is outside 0..255", who, p.Multihop)
		} else if p.Multihop > 0 && p.ASN == b.ASN {
			v.add(pp+".multihop", "%s: multihop applies to eBGP sessions only; this one is iBGP", who)
		}
	}
	// A session carries the prefixes of its own family, and those of the
	// other family only with a next hop of that family configured (the
	// session's own address cannot be one).
	for _, fam := range []bool{true, false} {
		if !hasFamily(b.Announce, fam) || nextHop[fam].IsValid() {
			continue
		}
		carried := false
		for _, p := range b.Peers {
			carried = carried || (checkUnicast(p.Address) == "" && p.Address.Is4() == fam)
		}
		if !carried && len(b.Peers) > 0 {
			v.add("bgp.announce", "bgp.announce holds %s prefixes, but no peer is %s and bgp.next_hop names no %s address to send them over an %s session",
				family(fam), family(fam), family(fam), family(!fam))
		}
	}
	v.communities(b)
	v.selfCheck(&b.SelfCheck)
}

// asn checks an AS number.
func (v *validator) asn(path, what string, asn int64) {
	switch {
	case asn == 0:
		v.add(path, "%s is required", what)
	case asn < 1 || asn > math.MaxUint32:
		v.add(path, "%s %d is outside 1..4294967295", what, asn)
	case asn == asTrans:
		v.add(path, "%s %d is AS_TRANS (RFC 6793), which no speaker may use", what, asn)
	}
}

// nextHops checks bgp.next_hop and returns it by family (true = IPv4).
func (v *validator) nextHops(b *BGP) map[bool]netip.Addr {
	out := map[bool]netip.Addr{}
	for i, a := range b.NextHop {
		p := itemPath("bgp.next_hop", i)
		if msg := checkUnicast(a); msg != "" {
			v.add(p, "bgp.next_hop: %s", msg)
			continue
		}
		if prev, dup := out[a.Is4()]; dup {
			v.add(p, "bgp.next_hop: %s and %s are both %s; name at most one address of each family", prev, a, family(a.Is4()))
			continue
		}
		out[a.Is4()] = a
	}
	return out
}

func (v *validator) announce(c *Config) {
	b := c.BGP
	if len(b.Announce) == 0 {
		v.add("bgp.announce", "bgp.announce is empty: name the prefixes to announce, or set node.addresses")
	}
	seen := map[netip.Prefix]string{}
	for i, p := range b.Announce {
		path := itemPath("bgp.announce", i)
		if !p.IsValid() {
			v.add(path, "bgp.announce: missing prefix")
			continue
		}
		if p.Addr().Is4In6() {
			v.add(path, "bgp.announce: %s is an IPv4-mapped prefix; write it as IPv4", p)
			continue
		}
		if m := p.Masked(); m != p {
			v.add(path, "bgp.announce: %s has bits set beyond its length; did you mean %s?", p, m)
			continue
		}
		if first, dup := seen[p]; dup {
			v.add(path, "bgp.announce: duplicate prefix %s%s", p, v.firstAt(first))
		}
		seen[p] = path
	}
}

func (v *validator) communities(b *BGP) {
	for i, s := range b.Communities {
		if _, err := ParseCommunity(s); err != nil {
			v.add(itemPath("bgp.communities", i), "bgp.communities: %v", err)
		}
	}
}

func (v *validator) selfCheck(s *SelfCheck) {
	const p = "bgp.self_check."
	v.positive(p+"interval", "bgp.self_check.interval", s.Interval)
	v.positive(p+"timeout", "bgp.self_check.timeout", s.Timeout)
	if s.Timeout > s.Interval && s.Interval > 0 {
		v.add(p+"timeout", "bgp.self_check.timeout %s must not exceed interval %s", s.Timeout, s.Interval)
	}
	if s.Fall < 1 || s.Fall > 100 {
		v.add(p+"fall", "bgp.self_check.fall %d is outside 1..100", s.Fall)
	}
	if s.Rise < 1 || s.Rise > 100 {
		v.add(p+"rise", "bgp.self_check.rise %d is outside 1..100", s.Rise)
	}
	if s.HoldDown < 0 {
		v.add(p+"hold_down", "bgp.self_check.hold_down must not be negative, got %s", s.HoldDown)
	}
}

func hasFamily(prefixes []netip.Prefix, ipv4 bool) bool {
	for _, p := range prefixes {
		if p.IsValid() && p.Addr().Is4() == ipv4 {
			return true
		}
	}
	return false
}

func family(ipv4 bool) string {
	if ipv4 {
		return "IPv4"
	}
	return "IPv6"
}

// Community is a BGP community as announced: a standard community
// (RFC 1997) or, when Large is set, a large community (RFC 8092).
type Community struct {
	Large    bool
	Standard uint32    // ASN<<16 | value
	Parts    [3]uint32 // global administrator, local data 1, local data 2
}

// ParseCommunity reads "ASN:VALUE" (16 bits each), "A:B:C" (a large
// community, 32 bits each) or a well-known name: no-export, no-advertise,
// no-export-subconfed, blackhole, graceful-shutdown.
func ParseCommunity(s string) (Community, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "no-export":
		return Community{Standard: 0xFFFFFF01}, nil
	case "no-advertise":
		return Community{Standard: 0xFFFFFF02}, nil
	case "no-export-subconfed":
		return Community{Standard: 0xFFFFFF03}, nil
	case "blackhole":
		return Community{Standard: 0xFFFF029A}, nil
	case "graceful-shutdown":
		return Community{Standard: 0xFFFF0000}, nil
	}
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 2:
		hi, err1 := strconv.ParseUint(parts[0], 10, 16)
		lo, err2 := strconv.ParseUint(parts[1], 10, 16)
		if err1 != nil || err2 != nil {
			return Community{}, fmt.Errorf("community %q: both halves of ASN:VALUE must be numbers from 0 to 65535", s)
		}
		return Community{Standard: uint32(hi)<<16 | uint32(lo)}, nil
	case 3:
		var c Community
		c.Large = true
		for i, part := range parts {
			n, err := strconv.ParseUint(part, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("community %q: each part of a large community A:B:C must be a number from 0 to 4294967295", s)
			}
			c.Parts[i] = uint32(n)
		}
		return c, nil
	}
	return Community{}, fmt.Errorf("community %q: use ASN:VALUE, a large community A:B:C, or no-export, no-advertise, no-export-subconfed, blackhole, graceful-shutdown", s)
}
