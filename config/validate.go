package config

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// validator runs the checks that need no I/O. Each problem is reported at
// the line of the offending key or list item.
type validator struct {
	errs *errorList
	pos  *positions
	// fromFile is set when the Config came from Parse: a token must then
	// name where its secret comes from.
	fromFile bool

	regions map[string]int // region name → index in Config.Regions
}

// add reports a problem at path unless that value already failed to decode.
func (v *validator) add(path, format string, args ...any) {
	if v.pos.suppressed(path) {
		return
	}
	line := v.pos.line(path)
	if v.fromFile && line == 0 {
		line = 1 // every problem in a file gets a line
	}
	v.errs.add(line, format, args...)
}

// firstAt formats " (first at line N)" when the line is known.
func (v *validator) firstAt(path string) string {
	if l := v.pos.line(path); l > 0 {
		return fmt.Sprintf(" (first at line %d)", l)
	}
	return ""
}

// subject names a list item in messages: kind "name", or its path when it
// has no name.
func subject(kind, name, path string) string {
	if name == "" {
		return path
	}
	return kind + " " + quote(name)
}

func (v *validator) config(c *Config) {
	v.node(c)
	v.listen(c)
	v.tls(c)
	v.admin(c)
	v.state(c)
	v.fleet(c)
	v.dns(c)
	v.regionList(c)
	v.zoneList(c)
	v.serviceList(c)
	v.failover(c)
	v.bgp(c)
}

func (v *validator) node(c *Config) {
	n := &c.Node
	if n.Name == "" {
		v.add("node.name", "node.name is empty and the host name is unknown; set node.name")
	} else if len(n.Name) > 255 {
		v.add("node.name", "node.name is longer than 255 characters")
	}
	v.location("node.location", "node", n.Location)
	seen := map[string]string{}
	for i, a := range n.Addresses {
		p := itemPath("node.addresses", i)
		if msg := checkUnicast(a); msg != "" {
			v.add(p, "node.addresses: %s", msg)
			continue
		}
		if first, dup := seen[a.String()]; dup {
			v.add(p, "node.addresses: duplicate address %s%s", a, v.firstAt(first))
		}
		seen[a.String()] = p
	}
	if n.Drain < 0 {
		v.add("node.drain", "node.drain must not be negative, got %s", n.Drain)
	}
	v.positive("node.shutdown_timeout", "node.shutdown_timeout", n.ShutdownTimeout)
}

// location checks a point's coordinates.
func (v *validator) location(path, who string, l *Location) {
	if l == nil {
		return
	}
	if !(l.Lat >= -90 && l.Lat <= 90) {
		v.add(path+".lat", "%s: location.lat %g is outside -90..90", who, l.Lat)
	}
	if !(l.Lon >= -180 && l.Lon <= 180) {
		v.add(path+".lon", "%s: location.lon %g is outside -180..180", who, l.Lon)
	}
}

// positive reports a duration that is zero or negative.
func (v *validator) positive(path, what string, d Duration) {
	if d <= 0 {
		v.add(path, "%s must be positive, got %s", what, d)
	}
}

func (v *validator) listen(c *Config) {
	l := &c.Listen
	bound := map[string]string{} // TCP address → path of its first use
	check := func(path, addr string) {
		if msg := checkListen(addr); msg != "" {
			v.add(path, "%s: invalid address %q: %s", path, addr, msg)
			return
		}
		if strings.HasSuffix(addr, ":0") {
			return // a port picked by the system never clashes
		}
		if first, dup := bound[addr]; dup {
			v.add(path, "%s: address %s is already used by %s", path, addr, first)
			return
		}
		bound[addr] = path
	}
	for i, a := range l.DNS {
		check(itemPath("listen.dns", i), a)
	}
	for i, a := range l.HTTP {
		check(itemPath("listen.http", i), a)
	}
	for i, a := range l.HTTPS {
		check(itemPath("listen.https", i), a)
	}
	check("listen.admin", l.Admin)
	if len(l.HTTPS) > 0 && len(c.TLS.Certificates) == 0 && c.TLS.ACME == nil {
		v.add("listen.https", "listen.https needs tls.certificates or tls.acme")
	}
	v.connections(&l.Connections)
}

// connections checks the client connection limits.
func (v *validator) connections(lc *Connections) {
	const p = "listen.connections."
	if lc.Max < 1 {
		v.add(p+"max", "listen.connections.max must be at least 1, got %d", lc.Max)
	}
	switch {
	case lc.MaxPerSource < 0:
		v.add(p+"max_per_source", "listen.connections.max_per_source must not be negative (0 turns it off), got %d", lc.MaxPerSource)
	case lc.Max >= 1 && lc.MaxPerSource > lc.Max:
		v.add(p+"max_per_source", "listen.connections.max_per_source %d is above listen.connections.max %d (0 turns it off)", lc.MaxPerSource, lc.Max)
	}
	v.positive(p+"idle_timeout", "listen.connections.idle_timeout", lc.IdleTimeout)
	v.positive(p+"busy_idle_timeout", "listen.connections.busy_idle_timeout", lc.BusyIdleTimeout)
	if lc.BusyIdleTimeout > lc.IdleTimeout && lc.IdleTimeout > 0 {
		v.add(p+"busy_idle_timeout", "listen.connections.busy_idle_timeout %s is longer than listen.connections.idle_timeout %s", lc.BusyIdleTimeout, lc.IdleTimeout)
	}
	if !(lc.BusyAt > 0 && lc.BusyAt <= 100) {
		v.add(p+"busy_at", "listen.connections.busy_at must be within 1%%..100%%, got %s", lc.BusyAt)
	}
}

func (v *validator) tls(c *Config) {
	for i, cert := range c.TLS.Certificates {
		p := itemPath("tls.certificates", i)
		if cert.CertFile == "" {
			v.add(p, "tls.certificates: cert_file is required")
		}
		if cert.KeyFile == "" {
			v.add(p, "tls.certificates: key_file is required")
		}
	}
	a := c.TLS.ACME
	if a == nil {
		return
	}
	if msg := checkHTTPURL(a.CA); msg != "" {
		v.add("tls.acme.ca", "tls.acme.ca %q: %s", a.CA, msg)
	}
	if !oneOf(a.Challenge, "dns-01", "http-01") {
		v.add("tls.acme.challenge", "tls.acme.challenge %q is not one of dns-01, http-01", a.Challenge)
	} else if a.Challenge == "http-01" && len(c.Listen.HTTP) == 0 {
		v.add("tls.acme.challenge", "tls.acme.challenge http-01 needs a listen.http address")
	}
	if a.Email != "" && !validEmail(a.Email) {
		v.add("tls.acme.email", "tls.acme.email %q is not an email address", a.Email)
	}
}

func (v *validator) admin(c *Config) {
	names := map[string]string{}
	secrets := map[string]string{}
	for i, t := range c.Admin.Tokens {
		p := itemPath("admin.tokens", i)
		who := subject("token", t.Name, p)
		v.name(p, "token", "token name", t.Name, names)
		if !oneOf(t.Role, "read", "write") {
			v.add(p+".role", "%s: role %q is not one of read, write", who, t.Role)
		}
		direct := !v.fromFile && t.Secret != ""
		if (t.SecretEnv == "") == (t.SecretFile == "") && !direct {
			v.add(p, "%s: set exactly one of secret_env and secret_file", who)
		}
		if t.Secret != "" {
			if first, dup := secrets[t.Secret]; dup {
				v.add(p, "%s: same secret as %s", who, first)
			} else {
				secrets[t.Secret] = who
			}
		}
	}
}

func (v *validator) state(c *Config) {
	s := &c.State
	if !oneOf(s.Backend, "file", "etcd") {
		v.add("state.backend", "state.backend %q is not one of file, etcd", s.Backend)
	}
	if s.Backend == "etcd" && (s.Etcd == nil || len(s.Etcd.Endpoints) == 0) {
		v.add("state.backend", "state.backend etcd needs state.etcd.endpoints")
	}
	if s.Etcd == nil {
		return
	}
	for i, e := range s.Etcd.Endpoints {
		if msg := checkHTTPURL(e); msg != "" {
			v.add(itemPath("state.etcd.endpoints", i), "state.etcd.endpoints: %q: %s", e, msg)
		}
	}
	if !strings.HasPrefix(s.Etcd.Prefix, "/") {
		v.add("state.etcd.prefix", "state.etcd.prefix %q must start with /", s.Etcd.Prefix)
	}
	v.etcd(s.Etcd)
}

// maxTTL is the largest TTL a DNS record may carry (RFC 2181 §8).
const maxTTL = math.MaxInt32

// checkTTL reports a TTL in seconds outside lo..maxTTL.
func (v *validator) checkTTL(path, what string, ttl, lo int) {
	if ttl < lo || ttl > maxTTL {
		v.add(path, "%s %d is outside %d..%d", what, ttl, lo, maxTTL)
	}
}

// checkDNSTTL reports a duration that is not a usable DNS TTL.
func (v *validator) checkDNSTTL(path, what string, d Duration) {
	if d.D() < time.Second || d.D() > maxTTL*time.Second {
		v.add(path, "%s must be between 1s and %ds, got %s", what, maxTTL, d)
	}
}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// name checks a list item's name: present, well formed and not taken yet
// (seen maps each name to the path of its first use). It reports whether
// the name is valid and new.
func (v *validator) name(p, kind, dupLabel, name string, seen map[string]string) bool {
	switch {
	case name == "":
		v.add(p, "%s: name is required", p)
	case !validName(name):
		v.add(p+".name", "%s %q: invalid name: %s", kind, name, nameRule)
	default:
		if first, dup := seen[name]; dup {
			v.add(p+".name", "duplicate %s %q%s", dupLabel, name, v.firstAt(first))
			return false
		}
		seen[name] = p + ".name"
		return true
	}
	return false
}
