package config

import (
	"net/url"
	"strings"
	"time"
)

// Defaults that the types' comments and the configuration reference name.
const (
	DefaultAdminListen     = "127.0.0.1:9053"
	DefaultStatePath       = "./meridian-state.json"
	DefaultEtcdPrefix      = "/meridian/"
	DefaultHealthPath      = "/health/ready"
	DefaultACMECA          = "https://acme-v02.api.letsencrypt.org/directory"
	DefaultACMEStorage     = "./meridian-certs"
	DefaultDrain           = 5 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	DefaultHealthInterval  = 2 * time.Second
	DefaultHealthTimeout   = time.Second
	DefaultTTL             = 30 * time.Second
	DefaultConnectTimeout  = 2 * time.Second
	DefaultProxyTimeout    = 30 * time.Second
	DefaultMaxRetryBody    = 64 << 10
	DefaultRetries         = 2
	DefaultRetryBudget     = 20
	DefaultRise            = 2
	DefaultFall            = 2
	DefaultSOATTL          = 3600
	DefaultSOANegativeTTL  = 60
	DefaultSOARefresh      = 7200
	DefaultSOARetry        = 3600
	DefaultSOAExpire       = 1209600

	DefaultMaxConnections          = 20000
	DefaultMaxConnectionsPerSource = 256
	DefaultIdleTimeout             = 120 * time.Second
	DefaultBusyIdleTimeout         = 5 * time.Second
	DefaultBusyAt                  = 80
)

// DefaultRetryOn is the retry_on list of a service that sets none.
func DefaultRetryOn() []string {
	return []string{"connect-failure", "timeout", "502", "503", "504"}
}

// normalize lower-cases DNS names and strips their final dot, and writes
// geo codes in their canonical case, so that later checks and consumers
// compare plain strings.
func normalize(c *Config) {
	for i := range c.Zones {
		z := &c.Zones[i]
		z.Name = dnsName(z.Name)
		for j := range z.Nameservers {
			z.Nameservers[j] = dnsName(z.Nameservers[j])
		}
	}
	for i := range c.Regions {
		for j := range c.Regions[i].Endpoints {
			e := &c.Regions[i].Endpoints[j]
			e.Hostname = dnsName(e.Hostname)
			e.Address = e.Address.Unmap()
		}
	}
	for i := range c.Node.Addresses {
		c.Node.Addresses[i] = c.Node.Addresses[i].Unmap()
	}
	for i := range c.Services {
		s := &c.Services[i]
		for j := range s.Hostnames {
			s.Hostnames[j] = dnsName(s.Hostnames[j])
		}
		for j := range s.Geo {
			for k, code := range s.Geo[j].Match {
				if strings.EqualFold(code, geoDefault) {
					s.Geo[j].Match[k] = geoDefault
				} else {
					s.Geo[j].Match[k] = strings.ToUpper(code)
				}
			}
		}
		for j := range s.Proxy.RetryOn {
			s.Proxy.RetryOn[j] = strings.ToLower(s.Proxy.RetryOn[j])
		}
		for j, p := range s.Proxy.TrustedProxies {
			s.Proxy.TrustedProxies[j] = p.Masked()
		}
	}
}

// dnsName lower-cases name and strips one final dot.
func dnsName(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

// applyDefaults fills what the file left out. Strings default when empty;
// numbers and durations when the key is absent (pos.set), so that an
// explicit 0 is kept and judged by the checks. hostname supplies the
// default node name; when it fails the name stays empty and the validator
// reports it.
func applyDefaults(c *Config, pos *positions, hostname func() (string, error)) {
	if c.Node.Name == "" {
		if h, err := hostname(); err == nil {
			c.Node.Name = h
		}
	}
	setDuration(&c.Node.Drain, pos, "node.drain", DefaultDrain)
	setDuration(&c.Node.ShutdownTimeout, pos, "node.shutdown_timeout", DefaultShutdownTimeout)
	setString(&c.Listen.Admin, DefaultAdminListen)
	lc := &c.Listen.Connections
	setInt(&lc.Max, pos, "listen.connections.max", DefaultMaxConnections)
	setInt(&lc.MaxPerSource, pos, "listen.connections.max_per_source", DefaultMaxConnectionsPerSource)
	setDuration(&lc.IdleTimeout, pos, "listen.connections.idle_timeout", DefaultIdleTimeout)
	setDuration(&lc.BusyIdleTimeout, pos, "listen.connections.busy_idle_timeout", DefaultBusyIdleTimeout)
	if !pos.set("listen.connections.busy_at") && lc.BusyAt == 0 {
		lc.BusyAt = DefaultBusyAt
	}

	if a := c.TLS.ACME; a != nil {
		setString(&a.CA, DefaultACMECA)
		setString(&a.Challenge, "dns-01")
		setString(&a.Storage, DefaultACMEStorage)
	}
	setString(&c.State.Backend, "file")
	setString(&c.State.Path, DefaultStatePath)
	if c.State.Etcd != nil {
		setString(&c.State.Etcd.Prefix, DefaultEtcdPrefix)
	}
	fleetDefaults(c, pos)

	bgpDefaults(c, pos)
	dnsDefaults(c, pos)

	for i := range c.Regions {
		regionDefaults(&c.Regions[i], pos, itemPath("regions", i))
	}
	for i := range c.Zones {
		z := &c.Zones[i]
		p := itemPath("zones", i) + ".soa."
		setString(&z.SOA.Email, "hostmaster@"+z.Name)
		setInt(&z.SOA.TTL, pos, p+"ttl", DefaultSOATTL)
		setInt(&z.SOA.NegativeTTL, pos, p+"negative_ttl", DefaultSOANegativeTTL)
		setInt(&z.SOA.Refresh, pos, p+"refresh", DefaultSOARefresh)
		setInt(&z.SOA.Retry, pos, p+"retry", DefaultSOARetry)
		setInt(&z.SOA.Expire, pos, p+"expire", DefaultSOAExpire)
	}
	for i := range c.Services {
		serviceDefaults(&c.Services[i], pos, itemPath("services", i))
	}
	failoverDefaults(c, pos)
}

func regionDefaults(r *Region, pos *positions, p string) {
	for j := range r.Endpoints {
		e := &r.Endpoints[j]
		ep := itemPath(p+".endpoints", j)
		setInt(&e.Weight, pos, ep+".weight", 1)
		if e.URL == "" {
			e.URL = defaultURL(e)
		}
	}
	h := &r.Health
	setString(&h.Type, "http")
	setString(&h.Path, DefaultHealthPath)
	setDuration(&h.Interval, pos, p+".health.interval", DefaultHealthInterval)
	setDuration(&h.Timeout, pos, p+".health.timeout", DefaultHealthTimeout)
	setInt(&h.Rise, pos, p+".health.rise", DefaultRise)
	setInt(&h.Fall, pos, p+".health.fall", DefaultFall)
	setInt(&r.MinHealthy, pos, p+".min_healthy", 1)
}

// defaultURL is http://ADDRESS, or http://HOSTNAME for an endpoint with
// no address; "" for an endpoint with neither.
func defaultURL(e *Endpoint) string {
	host := e.Hostname
	if e.Address.IsValid() {
		host = e.Address.String()
		if e.Address.Is6() {
			host = "[" + host + "]"
		}
	}
	if host == "" {
		return ""
	}
	return (&url.URL{Scheme: "http", Host: host}).String()
}

func serviceDefaults(s *Service, pos *positions, p string) {
	setString(&s.Mode, "dns")
	setString(&s.Policy, "latency")
	setString(&s.AllDown, "answer")
	setString(&s.Salt, s.Name)
	setDuration(&s.TTL, pos, p+".ttl", DefaultTTL)
	if !pos.set(p+".ttl_degraded") && s.TTLDegraded == 0 {
		s.TTLDegraded = Duration(max((s.TTL.D() / 4).Truncate(time.Second), time.Second))
	}
	setInt(&s.Answers, pos, p+".answers", 1)

	x := &s.Proxy
	pp := p + ".proxy."
	setInt(&x.Retries, pos, pp+"retries", DefaultRetries)
	if !pos.set(pp+"retry_budget") && x.RetryBudget == 0 {
		x.RetryBudget = DefaultRetryBudget
	}
	if !pos.set(pp+"retry_on") && len(x.RetryOn) == 0 {
		x.RetryOn = DefaultRetryOn()
	}
	setDuration(&x.ConnectTimeout, pos, pp+"connect_timeout", DefaultConnectTimeout)
	setDuration(&x.Timeout, pos, pp+"timeout", DefaultProxyTimeout)
	if !pos.set(pp+"max_retry_body") && x.MaxRetryBody == 0 {
		x.MaxRetryBody = DefaultMaxRetryBody
	}
	setString(&x.Sticky, "none")
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// setInt applies def when path was not in the file and *v is still zero.
func setInt(v *int, pos *positions, path string, def int) {
	if *v == 0 && !pos.set(path) {
		*v = def
	}
}

func setDuration(v *Duration, pos *positions, path string, def time.Duration) {
	if *v == 0 && !pos.set(path) {
		*v = Duration(def)
	}
}
