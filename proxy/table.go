package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/policy"
)

// Input is what a routing table is built from; the node passes the same
// fields to the DNS server.
type Input struct {
	Config *config.Config
	// Geo locates clients for geo policies; nil leaves them unlocated.
	Geo *geo.DB
	// Policy has the same indexes as Config.Regions and Config.Services.
	Policy *policy.Snapshot
	// Health is endpoint health; nil counts every endpoint up.
	Health *health.Snapshot
	// Degraded is unused by the proxy (it shortens DNS TTLs).
	Degraded []bool
}

// Fallback values for settings a config left at zero. Loaded configs carry
// the config package's defaults; these keep hand-built ones safe.
const (
	fallbackTimeout        = config.DefaultProxyTimeout
	fallbackConnectTimeout = config.DefaultConnectTimeout
)

// table is everything a request needs, built by Update and never modified.
type table struct {
	pol      *policy.Snapshot
	geo      *geo.DB
	hosts    map[string]*service // normalised hostname → service
	fallback *service            // services[].proxy.default, or nil
	regions  []*region           // index = config region index
}

// service is a proxy-mode service with its settings resolved.
type service struct {
	idx     int // index in Config.Services and Policy.Services
	name    string
	st      *serviceState
	retries int
	retryOn retryOn
	budget  float64 // share of requests in flight
	maxBody int64
	timeout time.Duration
	sticky  stickyMode
	trusted []netip.Prefix
	needGeo bool
	// plain: every endpoint of every region of the service is http, so
	// the fast path may forward its requests.
	plain    bool
	failOpen prometheus.Counter
	// writes lists the methods confined to the writes primary.
	writes []string
	// rm holds the metric children per config region index; nil for
	// regions the service does not use.
	rm []*regionMetrics
}

// region is one configured region's endpoints.
type region struct {
	idx    int
	name   string
	hdr    []string // X-Meridian-Region value, shared read-only
	eps    []*endpoint
	usable []*endpoint // healthy (or forced up) endpoints
}

// endpoint is one upstream of a region.
type endpoint struct {
	region *region
	idx    int
	url    *url.URL
	weight int
	bit    uint64 // in exchange.tried
	hash   uint64 // rendezvous hashing
	id     string // in the sticky cookie
	cookie [2]string
	st     *endpointState
}

type stickyMode uint8

const (
	stickyNone stickyMode = iota
	stickyClientIP
	stickyCookie
)

// Update builds a new routing table from in and swaps it in. On error the
// previous table keeps serving.
func (p *Proxy) Update(in Input) error {
	if err := checkInput(in); err != nil {
		return fmt.Errorf("updating proxy: %w", err)
	}
	regions, err := buildRegions(in)
	if err != nil {
		return fmt.Errorf("updating proxy: %w", err)
	}
	specs, err := buildServices(in.Config)
	if err != nil {
		return fmt.Errorf("updating proxy: %w", err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	tab := &table{pol: in.Policy, geo: in.Geo, hosts: make(map[string]*service), regions: regions}
	liveEPs := make(map[endpointKey]bool)
	for _, rg := range regions {
		for _, ep := range rg.eps {
			k := endpointKey{region: rg.name, url: ep.url.String()}
			st := p.endpoints[k]
			if st == nil {
				st = new(endpointState)
				p.endpoints[k] = st
			}
			ep.st = st
			liveEPs[k] = true
		}
	}
	liveSvcs := make(map[string]bool)
	livePairs := make(map[pairKey]bool)
	var retired []*serviceState
	for _, sp := range specs {
		svc := sp.svc
		tk := transportKey{connect: sp.connect, header: sp.header}
		st := p.services[svc.name]
		if st == nil || st.key != tk {
			if st != nil {
				retired = append(retired, st)
			}
			st = newServiceState(tk, p.upstreamTLS, st)
			p.services[svc.name] = st
		}
		svc.st = st
		liveSvcs[svc.name] = true
		if p.failOpen != nil {
			svc.failOpen = p.failOpen.WithLabelValues(svc.name)
		}
		svc.rm = make([]*regionMetrics, len(regions))
		svc.plain = true
		for _, ri := range in.Policy.Services[svc.idx].Regions {
			for _, ep := range regions[ri].eps {
				svc.plain = svc.plain && ep.url.Scheme == "http"
			}
			k := pairKey{service: svc.name, region: regions[ri].name}
			rm := p.pairs[k]
			if rm == nil {
				rm = p.met.pair(k.service, k.region)
				p.pairs[k] = rm
			}
			svc.rm[ri] = rm
			livePairs[k] = true
		}
		for _, h := range sp.hosts {
			tab.hosts[h] = svc
		}
		if sp.fallback {
			tab.fallback = svc
		}
	}
	p.tab.Store(tab)

	for k, st := range p.endpoints {
		if !liveEPs[k] {
			delete(p.endpoints, k)
			st.fast.Retire() // requests in flight close theirs when done
		}
	}
	for name, st := range p.services {
		if !liveSvcs[name] {
			retired = append(retired, st)
			delete(p.services, name)
			p.met.forgetService(name)
		}
	}
	for k := range p.pairs {
		if !livePairs[k] {
			delete(p.pairs, k)
			if liveSvcs[k.service] {
				p.met.forgetPair(k.service, k.region)
			}
		}
	}
	for _, st := range retired {
		// Requests in flight keep their connections; idle ones go now.
		st.transport.CloseIdleConnections()
	}
	return nil
}

func checkInput(in Input) error {
	switch {
	case in.Config == nil:
		return errors.New("no config")
	case in.Policy == nil:
		return errors.New("no policy snapshot")
	case len(in.Policy.Regions) != len(in.Config.Regions):
		return fmt.Errorf("policy snapshot has %d regions, config %d", len(in.Policy.Regions), len(in.Config.Regions))
	case len(in.Policy.Services) != len(in.Config.Services):
		return fmt.Errorf("policy snapshot has %d services, config %d", len(in.Policy.Services), len(in.Config.Services))
	}
	for i := range in.Config.Regions {
		if a, b := in.Policy.Regions[i].Name, in.Config.Regions[i].Name; a != b {
			return fmt.Errorf("policy region %d is %q, config region %q", i, a, b)
		}
	}
	for i := range in.Config.Services {
		if a, b := in.Policy.Services[i].Name, in.Config.Services[i].Name; a != b {
			return fmt.Errorf("policy service %d is %q, config service %q", i, a, b)
		}
	}
	return nil
}

// buildRegions resolves every region's endpoints and their health.
func buildRegions(in Input) ([]*region, error) {
	regions := make([]*region, len(in.Config.Regions))
	for i := range in.Config.Regions {
		cr := &in.Config.Regions[i]
		rg := &region{idx: i, name: cr.Name, hdr: []string{cr.Name}}
		forcedUp := in.Policy.Regions[i].Override == policy.ForceUp
		for k := range cr.Endpoints {
			ce := &cr.Endpoints[k]
			u, err := endpointURL(ce)
			if err != nil {
				return nil, fmt.Errorf("region %q endpoint %d: %w", cr.Name, k, err)
			}
			ep := &endpoint{region: rg, idx: k, url: u, weight: max(ce.Weight, 1), bit: 1 << (k % 64)}
			ep.hash = policy.HashString(u.String())
			ep.id = strconv.FormatUint(ep.hash&0xffffffff, 16)
			v := cookieName + "=" + rg.name + ":" + ep.id + "; Path=/; HttpOnly; SameSite=Lax"
			ep.cookie = [2]string{v, v + "; Secure"}
			rg.eps = append(rg.eps, ep)
			if endpointUsable(in.Health, i, k, forcedUp) {
				rg.usable = append(rg.usable, ep)
			}
		}
		regions[i] = rg
	}
	return regions, nil
}

// endpointUsable reports whether endpoint k of region i may take traffic:
// healthy and not ejected, or merely not ejected when an operator forced
// the region up.
func endpointUsable(h *health.Snapshot, i, k int, forcedUp bool) bool {
	if !forcedUp {
		return h.EndpointUp(i, k)
	}
	if h == nil || i >= len(h.Regions) || k >= len(h.Regions[i].Endpoints) {
		return true
	}
	return !h.Regions[i].Endpoints[k].Ejected
}

// endpointURL parses an endpoint's URL, defaulting to http://ADDRESS or
// http://HOSTNAME.
func endpointURL(e *config.Endpoint) (*url.URL, error) {
	raw := e.URL
	switch {
	case raw != "":
	case e.Address.Is4():
		raw = "http://" + e.Address.String()
	case e.Address.IsValid():
		raw = "http://[" + e.Address.String() + "]"
	case e.Hostname != "":
		raw = "http://" + e.Hostname
	default:
		return nil, errors.New("no url, address or hostname")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("url %q: want scheme://host[:port][/base-path]", raw)
	}
	return u, nil
}

// serviceSpec is a service built from config before it is bound to the
// proxy's long-lived state.
type serviceSpec struct {
	svc      *service
	hosts    []string
	fallback bool
	connect  time.Duration
	header   time.Duration
}

// buildServices resolves the settings of every proxy-mode service and
// checks that hostnames and the default service are unambiguous.
func buildServices(cfg *config.Config) ([]serviceSpec, error) {
	var specs []serviceSpec
	owner := make(map[string]string)
	fallback := ""
	for j := range cfg.Services {
		cs := &cfg.Services[j]
		if cs.Mode != "proxy" {
			continue
		}
		px := &cs.Proxy
		svc := &service{
			idx:     j,
			name:    cs.Name,
			retries: max(px.Retries, 0),
			budget:  min(max(px.RetryBudget.Fraction(), 0), 1),
			maxBody: max(int64(px.MaxRetryBody), 0),
			timeout: px.Timeout.D(),
			trusted: px.TrustedProxies,
			needGeo: cs.Policy == "geo",
		}
		if cs.Writes != nil {
			svc.writes = cs.Writes.Methods
		}
		ro, err := parseRetryOn(px.RetryOn)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", cs.Name, err)
		}
		svc.retryOn = ro
		switch px.Sticky {
		case "", "none":
		case "client-ip":
			svc.sticky = stickyClientIP
		case "cookie":
			svc.sticky = stickyCookie
		default:
			return nil, fmt.Errorf("service %q: unknown sticky mode %q", cs.Name, px.Sticky)
		}
		if svc.timeout <= 0 {
			svc.timeout = fallbackTimeout
		}
		sp := serviceSpec{svc: svc, fallback: px.Default, connect: px.ConnectTimeout.D()}
		if sp.connect <= 0 {
			sp.connect = fallbackConnectTimeout
		}
		if ro.timeout && svc.retries > 0 {
			sp.header = svc.timeout / time.Duration(svc.retries+1)
		}
		for _, h := range cs.Hostnames {
			h = normalizeHost(h)
			if prev, dup := owner[h]; dup {
				return nil, fmt.Errorf("hostname %q belongs to services %q and %q", h, prev, cs.Name)
			}
			owner[h] = cs.Name
			sp.hosts = append(sp.hosts, h)
		}
		if px.Default {
			if fallback != "" {
				return nil, fmt.Errorf("services %q and %q are both proxy.default", fallback, cs.Name)
			}
			fallback = cs.Name
		}
		specs = append(specs, sp)
	}
	return specs, nil
}

// normalizeHost lower-cases a hostname and strips its final dot.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
