package config

import (
	"maps"
	"slices"
	"strings"
)

func (v *validator) regionList(c *Config) {
	v.regions = map[string]int{}
	seen := map[string]string{}
	for i := range c.Regions {
		r := &c.Regions[i]
		p := itemPath("regions", i)
		if v.name(p, "region", "region", r.Name, seen) {
			v.regions[r.Name] = i
		}
		v.region(r, p)
	}
}

func (v *validator) region(r *Region, p string) {
	who := subject("region", r.Name, p)
	v.location(p+".location", who, r.Location)
	if len(r.Endpoints) == 0 {
		v.add(p+".endpoints", "%s: no endpoints", who)
	}
	urls := map[string]string{}
	for j := range r.Endpoints {
		e := &r.Endpoints[j]
		ep := itemPath(p+".endpoints", j)
		switch {
		case !e.Address.IsValid() && e.Hostname == "":
			v.add(ep, "%s: endpoint needs an address or a hostname", who)
		case e.Address.IsValid():
			if msg := checkUnicast(e.Address); msg != "" {
				v.add(ep+".address", "%s: endpoint address: %s", who, msg)
			}
		}
		if e.Hostname != "" && !validDomain(e.Hostname) {
			v.add(ep+".hostname", "%s: endpoint hostname %q is not a valid host name", who, e.Hostname)
		}
		if e.URL != "" {
			if msg := checkHTTPURL(e.URL); msg != "" {
				v.add(ep+".url", "%s: endpoint url %q: %s", who, e.URL, msg)
			} else if first, dup := urls[e.URL]; dup {
				v.add(ep+".url", "%s: duplicate endpoint url %s%s", who, e.URL, v.firstAt(first))
			} else {
				urls[e.URL] = ep
			}
		}
		if e.Weight < 1 {
			v.add(ep+".weight", "%s: endpoint weight must be at least 1, got %d", who, e.Weight)
		}
	}
	v.health(&r.Health, p+".health", who)
	switch {
	case r.MinHealthy < 1:
		v.add(p+".min_healthy", "%s: min_healthy must be at least 1, got %d", who, r.MinHealthy)
	case len(r.Endpoints) > 0 && r.MinHealthy > len(r.Endpoints):
		v.add(p+".min_healthy", "%s: min_healthy %d is more than the region's %d endpoints", who, r.MinHealthy, len(r.Endpoints))
	}
}

func (v *validator) health(h *Health, p, who string) {
	if !oneOf(h.Type, "http", "https", "tcp", "none") {
		v.add(p+".type", "%s: health.type %q is not one of http, https, tcp, none", who, h.Type)
	}
	if !strings.HasPrefix(h.Path, "/") {
		v.add(p+".path", "%s: health.path %q must start with /", who, h.Path)
	}
	if strings.ContainsAny(h.Host, " \t\r\n/") {
		v.add(p+".host", "%s: health.host %q is not a host name", who, h.Host)
	}
	for i, code := range h.Expect {
		if code < 100 || code > 599 {
			v.add(itemPath(p+".expect", i), "%s: health.expect code %d is outside 100..599", who, code)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(h.Headers)) {
		value := h.Headers[name]
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			v.add(childPath(p+".headers", name), "%s: health.headers: invalid header name %q", who, name)
		}
		if strings.ContainsAny(value, "\r\n") {
			v.add(childPath(p+".headers", name), "%s: health.headers: the value of %s holds a line break", who, name)
		}
	}
	v.positive(p+".interval", who+": health.interval", h.Interval)
	v.positive(p+".timeout", who+": health.timeout", h.Timeout)
	if h.Rise < 1 {
		v.add(p+".rise", "%s: health.rise must be at least 1, got %d", who, h.Rise)
	}
	if h.Fall < 1 {
		v.add(p+".fall", "%s: health.fall must be at least 1, got %d", who, h.Fall)
	}
}
