package config

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Defaults of the single-writer and failover settings (SPEC section 10).
const (
	DefaultReplicationInterval = 2 * time.Second
	DefaultPromoteTimeout      = 60 * time.Second
	DefaultFailoverRPO         = 5 * time.Second
	DefaultFailoverMaxWait     = 2 * time.Minute
	DefaultFailoverHold        = time.Minute
	DefaultFailoverAfter       = 30 * time.Second
	DefaultFailoverHoldDown    = 10 * time.Minute
	// DefaultFailoverMaxErrorRatio is the error ratio of the regions
	// gaining traffic above which a failover's traffic step stops.
	DefaultFailoverMaxErrorRatio = 0.05
)

// DefaultWriteMethods is the writes.methods list of a service that sets
// none.
func DefaultWriteMethods() []string {
	return []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
}

// Replication says where a region's replica reports its lag.
type Replication struct {
	// LagURL answers GET with JSON {"lag_seconds": N} or a bare number.
	LagURL   string   `yaml:"lag_url"`
	Interval Duration `yaml:"interval"` // default 2s
}

// Promote is the hook that makes a region's database the writer.
type Promote struct {
	URL     string   `yaml:"url"`     // POST; 2xx = done
	Timeout Duration `yaml:"timeout"` // default 60s
}

// Writes routes a proxy-mode service's writing requests to one region.
type Writes struct {
	Primary string   `yaml:"primary"` // a region of the service
	Methods []string `yaml:"methods"` // default POST, PUT, PATCH, DELETE; upper case after Parse
}

// Failover configures a service's failover runbook.
type Failover struct {
	RPO      Duration `yaml:"rpo"`       // default 5s
	MaxWait  Duration `yaml:"max_wait"`  // default 2m
	Hold     Duration `yaml:"hold"`      // default 1m
	Auto     bool     `yaml:"auto"`      // run by itself when the primary has been down After
	After    Duration `yaml:"after"`     // default 30s
	Failback string   `yaml:"failback"`  // manual (default) | auto
	HoldDown Duration `yaml:"hold_down"` // default 10m
	// Guard bounds the traffic steps; zero fields take the defaults
	// (max_error_ratio 5%, max_p95 unchecked).
	Guard FailoverGuard `yaml:"guard"`
}

// FailoverGuard is the guard of a failover's traffic steps.
type FailoverGuard struct {
	MaxErrorRatio float64  `yaml:"max_error_ratio"`
	MaxP95        Duration `yaml:"max_p95"`
}

// IsWrite reports whether a request method is a write of the service:
// false for a service without writes.
func (s *Service) IsWrite(method string) bool {
	return s.Writes != nil && slices.Contains(s.Writes.Methods, method)
}

// Primary is the configured writes primary of the service: writes.primary,
// else its first region.
func (s *Service) Primary() string {
	if s.Writes != nil && s.Writes.Primary != "" {
		return s.Writes.Primary
	}
	if len(s.Regions) > 0 {
		return s.Regions[0]
	}
	return ""
}

func failoverDefaults(c *Config, pos *positions) {
	for i := range c.Regions {
		r := &c.Regions[i]
		p := itemPath("regions", i)
		if r.Replication != nil {
			setDuration(&r.Replication.Interval, pos, p+".replication.interval", DefaultReplicationInterval)
		}
		if r.Promote != nil {
			setDuration(&r.Promote.Timeout, pos, p+".promote.timeout", DefaultPromoteTimeout)
		}
	}
	for i := range c.Services {
		s := &c.Services[i]
		p := itemPath("services", i)
		if w := s.Writes; w != nil {
			if !pos.set(p+".writes.methods") && len(w.Methods) == 0 {
				w.Methods = DefaultWriteMethods()
			}
			for j := range w.Methods {
				w.Methods[j] = strings.ToUpper(strings.TrimSpace(w.Methods[j]))
			}
		}
		if f := s.Failover; f != nil {
			fp := p + ".failover."
			setDuration(&f.RPO, pos, fp+"rpo", DefaultFailoverRPO)
			setDuration(&f.MaxWait, pos, fp+"max_wait", DefaultFailoverMaxWait)
			setDuration(&f.Hold, pos, fp+"hold", DefaultFailoverHold)
			setDuration(&f.After, pos, fp+"after", DefaultFailoverAfter)
			setDuration(&f.HoldDown, pos, fp+"hold_down", DefaultFailoverHoldDown)
			setString(&f.Failback, "manual")
			if !pos.set(fp+"guard.max_error_ratio") && f.Guard.MaxErrorRatio == 0 {
				f.Guard.MaxErrorRatio = DefaultFailoverMaxErrorRatio
			}
		}
	}
}

// failover checks the replication, promote, writes and failover keys.
func (v *validator) failover(c *Config) {
	for i := range c.Regions {
		r := &c.Regions[i]
		p := itemPath("regions", i)
		who := subject("region", r.Name, p)
		if x := r.Replication; x != nil {
			if msg := checkHTTPURL(x.LagURL); msg != "" {
				v.add(p+".replication.lag_url", "%s: replication.lag_url %q: %s", who, x.LagURL, msg)
			}
			v.positive(p+".replication.interval", who+": replication.interval", x.Interval)
		}
		if x := r.Promote; x != nil {
			if msg := checkHTTPURL(x.URL); msg != "" {
				v.add(p+".promote.url", "%s: promote.url %q: %s", who, x.URL, msg)
			}
			v.positive(p+".promote.timeout", who+": promote.timeout", x.Timeout)
		}
	}
	for i := range c.Services {
		s := &c.Services[i]
		p := itemPath("services", i)
		who := subject("service", s.Name, p)
		if w := s.Writes; w != nil {
			if s.Mode != "proxy" {
				v.add(p+".writes", "%s: writes needs mode proxy (for a dns service, give the writes a hostname of their own served by a failover service)", who)
			}
			switch {
			case w.Primary == "":
				v.add(p+".writes.primary", "%s: writes.primary is required", who)
			case !slices.Contains(s.Regions, w.Primary):
				v.add(p+".writes.primary", "%s: writes.primary %q is not in the service's regions", who, w.Primary)
			}
			if len(w.Methods) == 0 {
				v.add(p+".writes.methods", "%s: writes.methods is empty", who)
			}
			for j, m := range w.Methods {
				if !validToken(m) {
					v.add(itemPath(p+".writes.methods", j), "%s: writes.methods %q is not an HTTP method", who, m)
				}
			}
		}
		if f := s.Failover; f != nil {
			fp := p + ".failover"
			if f.RPO < 0 {
				v.add(fp+".rpo", "%s: failover.rpo must not be negative, got %s", who, f.RPO)
			}
			if f.MaxWait < 0 {
				v.add(fp+".max_wait", "%s: failover.max_wait must not be negative, got %s", who, f.MaxWait)
			}
			v.positive(fp+".hold", who+": failover.hold", f.Hold)
			v.positive(fp+".after", who+": failover.after", f.After)
			v.positive(fp+".hold_down", who+": failover.hold_down", f.HoldDown)
			if !oneOf(f.Failback, "manual", "auto") {
				v.add(fp+".failback", "%s: failover.failback %q is not one of manual, auto", who, f.Failback)
			}
			if !(f.Guard.MaxErrorRatio >= 0 && f.Guard.MaxErrorRatio <= 1) {
				v.add(fp+".guard.max_error_ratio", "%s: failover.guard.max_error_ratio %g is outside 0..1", who, f.Guard.MaxErrorRatio)
			}
			if f.Guard.MaxP95 < 0 {
				v.add(fp+".guard.max_p95", "%s: failover.guard.max_p95 must not be negative", who)
			}
			if len(s.Regions) < 2 {
				v.add(fp, "%s: failover needs at least two regions", who)
			}
		}
	}
}

// validToken reports whether s is an HTTP token (RFC 9110), as a method is.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
