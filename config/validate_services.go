package config

import (
	"maps"
	"slices"
	"strconv"
)

// hostUse is where a service hostname was first listed.
type hostUse struct {
	service string
	index   int // the service's index in Config.Services
	path    string
}

func (v *validator) serviceList(c *Config) {
	names := map[string]string{}
	hosts := map[string]hostUse{}
	for i := range c.Services {
		s := &c.Services[i]
		p := itemPath("services", i)
		v.name(p, "service", "service", s.Name, names)
		who := subject("service", s.Name, p)
		v.hostnames(c, s, i, p, who, hosts)
		v.service(c, s, p, who)
	}
}

func (v *validator) hostnames(c *Config, s *Service, i int, p, who string, hosts map[string]hostUse) {
	if len(s.Hostnames) == 0 {
		v.add(p+".hostnames", "%s: no hostnames", who)
	}
	for j, h := range s.Hostnames {
		hp := itemPath(p+".hostnames", j)
		if !validDomain(h) {
			v.add(hp, "%s: hostname %q is not a valid host name", who, h)
			continue
		}
		apex, inside := "", false
		for _, z := range c.Zones {
			if z.Name != "" && inZone(h, z.Name) {
				inside = true
				if h == z.Name {
					apex = z.Name
				}
			}
		}
		if !inside {
			v.add(hp, "%s: hostname %q is not inside any configured zone", who, h)
		}
		if apex != "" && s.Mode == "dns" && v.cnameOnly(c, s) {
			v.add(hp, "%s: hostname %q is the apex of zone %q, where the CNAME answers of endpoints with only a hostname are not allowed", who, h, apex)
		}
		switch first, dup := hosts[h]; {
		case !dup:
			hosts[h] = hostUse{service: s.Name, index: i, path: hp}
		case first.index == i:
			v.add(hp, "%s: hostname %q is listed twice%s", who, h, v.firstAt(first.path))
		default:
			v.add(hp, "%s: hostname %q is already used by service %q%s", who, h, first.service, v.firstAt(first.path))
		}
	}
}

// cnameOnly reports whether one of s's regions has an endpoint answered
// with a CNAME (a hostname and no address).
func (v *validator) cnameOnly(c *Config, s *Service) bool {
	for _, name := range s.Regions {
		idx, ok := v.regions[name]
		if !ok {
			continue
		}
		for _, e := range c.Regions[idx].Endpoints {
			if e.Hostname != "" && !e.Address.IsValid() {
				return true
			}
		}
	}
	return false
}

// regionRef reports a reference to a region that is not defined.
func (v *validator) regionRef(path, who, name string) bool {
	if _, ok := v.regions[name]; !ok {
		v.add(path, "%s: undefined region %q", who, name)
		return false
	}
	return true
}

func (v *validator) service(c *Config, s *Service, p, who string) {
	if !oneOf(s.Mode, "dns", "proxy") {
		v.add(p+".mode", "%s: mode %q is not one of dns, proxy", who, s.Mode)
	}
	if !oneOf(s.Policy, "latency", "geo", "failover", "weighted") {
		v.add(p+".policy", "%s: policy %q is not one of latency, geo, failover, weighted", who, s.Policy)
	}
	if !oneOf(s.AllDown, "answer", "nodata") {
		v.add(p+".all_down", "%s: all_down %q is not one of answer, nodata", who, s.AllDown)
	}
	if s.Answers < 1 {
		v.add(p+".answers", "%s: answers must be at least 1, got %d", who, s.Answers)
	}
	v.checkDNSTTL(p+".ttl", who+": ttl", s.TTL)
	v.checkDNSTTL(p+".ttl_degraded", who+": ttl_degraded", s.TTLDegraded)

	if len(s.Regions) == 0 {
		v.add(p+".regions", "%s: no regions", who)
	}
	listed := map[string]string{}
	for j, r := range s.Regions {
		rp := itemPath(p+".regions", j)
		if !v.regionRef(rp, who, r) {
			continue
		}
		if first, dup := listed[r]; dup {
			v.add(rp, "%s: region %q is listed twice%s", who, r, v.firstAt(first))
			continue
		}
		listed[r] = rp
	}
	v.geoRules(s, p, who, listed)
	for _, r := range slices.Sorted(maps.Keys(s.Dials)) {
		dp := childPath(p+".dials", r)
		if v.regionRef(dp, who, r) && listed[r] == "" {
			v.add(dp, "%s: dials: region %q is not in the service's regions", who, r)
		}
		if d := s.Dials[r]; d < 0 || d > 100 {
			v.add(dp, "%s: dial for %q must be within 0..100, got %d", who, r, d)
		}
	}
	v.proxy(&s.Proxy, p+".proxy", who)
	if s.Mode == "proxy" {
		if len(c.Node.Addresses) == 0 {
			v.add(p+".mode", "%s: mode proxy needs node.addresses: its DNS answers are this node's addresses", who)
		}
		if len(c.Listen.HTTP) == 0 && len(c.Listen.HTTPS) == 0 {
			v.add(p+".mode", "%s: mode proxy needs a listen.http or listen.https address", who)
		}
	}
}

const geoCodeRule = "is not default, a continent (AF AN AS EU NA OC SA), a country (DE) or a subdivision (US-CA)"

// geoRules checks a service's geo rules; listed holds its regions. Rules
// are checked whatever the policy: like unused pools of a load balancer,
// they may stay in place while the policy is not geo.
func (v *validator) geoRules(s *Service, p, who string, listed map[string]string) {
	type use struct {
		rule int
		path string
	}
	matched := map[string]use{}
	for j, rule := range s.Geo {
		rp := itemPath(p+".geo", j)
		if len(rule.Match) == 0 {
			v.add(rp, "%s: geo rule has no match codes", who)
		}
		for k, code := range rule.Match {
			cp := itemPath(rp+".match", k)
			first, dup := matched[code]
			switch {
			case geoCodeKind(code) == "":
				v.add(cp, "%s: geo match %q %s", who, code, geoCodeRule)
			case dup && first.rule == j:
				v.add(cp, "%s: geo match %q is repeated in its rule", who, code)
			case dup && code == geoDefault:
				v.add(cp, "%s: more than one geo rule matches default%s", who, v.firstAt(first.path))
			case dup:
				v.add(cp, "%s: geo match %q is already used by another rule%s", who, code, v.firstAt(first.path))
			default:
				matched[code] = use{rule: j, path: cp}
			}
		}
		if len(rule.Regions) == 0 {
			v.add(rp, "%s: geo rule has no regions", who)
		}
		for k, r := range rule.Regions {
			gp := itemPath(rp+".regions", k)
			if v.regionRef(gp, who, r) && listed[r] == "" {
				v.add(gp, "%s: geo rule region %q is not in the service's regions", who, r)
			}
		}
	}
}

func (v *validator) proxy(x *Proxy, p, who string) {
	if x.Retries < 0 {
		v.add(p+".retries", "%s: proxy.retries must not be negative, got %d", who, x.Retries)
	}
	if x.RetryBudget < 0 || x.RetryBudget > 100 {
		v.add(p+".retry_budget", "%s: proxy.retry_budget must be within 0%%..100%%, got %s", who, x.RetryBudget)
	}
	for i, r := range x.RetryOn {
		if !validRetryOn(r) {
			v.add(itemPath(p+".retry_on", i), "%s: proxy.retry_on %q is not connect-failure, timeout, 5xx or an HTTP status code", who, r)
		}
	}
	v.positive(p+".connect_timeout", who+": proxy.connect_timeout", x.ConnectTimeout)
	v.positive(p+".timeout", who+": proxy.timeout", x.Timeout)
	if x.MaxRetryBody < 0 {
		v.add(p+".max_retry_body", "%s: proxy.max_retry_body must not be negative", who)
	}
	if !oneOf(x.Sticky, "none", "client-ip", "cookie") {
		v.add(p+".sticky", "%s: proxy.sticky %q is not one of none, client-ip, cookie", who, x.Sticky)
	}
}

// validRetryOn reports whether r is a retry_on condition: connect-failure,
// timeout, 5xx or a three-digit HTTP status code.
func validRetryOn(r string) bool {
	if oneOf(r, "connect-failure", "timeout", "5xx") {
		return true
	}
	code, err := strconv.Atoi(r)
	return err == nil && len(r) == 3 && code >= 100 && code <= 599
}
