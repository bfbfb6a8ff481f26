package health

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// probeKind is how an endpoint is checked.
type probeKind uint8

const (
	kindHTTP    probeKind = iota // GET over http or https
	kindTCP                      // TCP connect
	kindNone                     // no probing: always up
	kindInvalid                  // not checkable: always down
)

// regionSpec is a region as the checker needs it: validated, with defaults.
type regionSpec struct {
	name       string
	minHealthy int
	targets    []target
}

// target is one endpoint to check, derived from the config.
type target struct {
	region string
	name   string // URL (or address): log and metric label
	key    string // identity across reloads: region, endpoint and health settings
	kind   probeKind

	url        string      // probe URL, kindHTTP
	serverName string      // TLS SNI override ("" = from the URL), kindHTTP
	host       string      // Host header override, kindHTTP
	header     http.Header // extra request headers, kindHTTP
	expect     []int       // accepted status codes; empty = any 2xx
	addr       string      // host:port to connect to, kindTCP
	invalid    string      // the result text, kindInvalid

	interval, timeout time.Duration
	rise, fall        int
}

// buildSpecs validates regions and turns them into specs, filling defaults
// for values left zero, so that struct literals work as well as parsed
// configs. It does no I/O. An endpoint that cannot be checked still gets a
// spec, of kind kindInvalid, so that indexes stay those of regions; the
// error says why, naming every such endpoint.
func buildSpecs(regions []config.Region) ([]regionSpec, error) {
	var errs []error
	specs := make([]regionSpec, len(regions))
	for i := range regions {
		r := &regions[i]
		specs[i] = regionSpec{name: r.Name, minHealthy: max(r.MinHealthy, 1)}
		h := withDefaults(r.Health)
		herr := checkHealth(h)
		if herr != nil {
			errs = append(errs, fmt.Errorf("region %q: %w", r.Name, herr))
		}
		for k := range r.Endpoints {
			e := &r.Endpoints[k]
			t, err := newTarget(r.Name, e, h)
			if herr != nil || err != nil {
				if err != nil {
					errs = append(errs, fmt.Errorf("region %q endpoint %d: %w", r.Name, k, err))
				} else {
					err = herr
				}
				t = invalidTarget(r.Name, e, h, err)
			}
			specs[i].targets = append(specs[i].targets, t)
		}
	}
	return specs, errors.Join(errs...)
}

// invalidTarget stands for an endpoint that cannot be checked: never
// probed, always down, its result naming the problem.
func invalidTarget(region string, e *config.Endpoint, h config.Health, err error) target {
	return target{
		region:   region,
		name:     endpointName(e),
		key:      targetKey(region, e, h),
		kind:     kindInvalid,
		invalid:  "invalid: " + err.Error(),
		interval: max(h.Interval.D(), time.Second),
	}
}

func withDefaults(h config.Health) config.Health {
	if h.Type == "" {
		h.Type = "http"
	}
	if h.Path == "" {
		h.Path = config.DefaultHealthPath
	}
	if h.Interval <= 0 {
		h.Interval = config.Duration(config.DefaultHealthInterval)
	}
	if h.Timeout <= 0 {
		h.Timeout = config.Duration(config.DefaultHealthTimeout)
	}
	if h.Rise < 1 {
		h.Rise = config.DefaultRise
	}
	if h.Fall < 1 {
		h.Fall = config.DefaultFall
	}
	return h
}

func checkHealth(h config.Health) error {
	switch h.Type {
	case "http", "https", "tcp", "none":
	default:
		return fmt.Errorf("health type %q is not one of http, https, tcp, none", h.Type)
	}
	if !strings.HasPrefix(h.Path, "/") {
		return fmt.Errorf("health path %q must start with /", h.Path)
	}
	return nil
}

func newTarget(region string, e *config.Endpoint, h config.Health) (target, error) {
	t := target{
		region:   region,
		name:     endpointName(e),
		interval: h.Interval.D(),
		timeout:  h.Timeout.D(),
		rise:     h.Rise,
		fall:     h.Fall,
	}
	t.key = targetKey(region, e, h)
	if h.Type == "none" {
		t.kind = kindNone
		return t, nil
	}
	if t.name == "" {
		return target{}, errors.New("endpoint has no url, address or hostname")
	}
	base, err := url.Parse(baseURL(e))
	if err != nil {
		return target{}, fmt.Errorf("parsing url: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" {
		return target{}, fmt.Errorf("url %q: scheme must be http or https", base)
	}
	if base.Hostname() == "" {
		return target{}, fmt.Errorf("url %q has no host", base)
	}
	if h.Type == "tcp" {
		t.kind = kindTCP
		t.addr = hostPort(base)
		return t, nil
	}
	t.kind = kindHTTP
	u, err := probeURL(base, h.Type, h.Path)
	if err != nil {
		return target{}, err
	}
	t.url = u.String()
	t.expect = slices.Clone(h.Expect)
	t.header = make(http.Header, len(h.Headers))
	for k, v := range h.Headers {
		if strings.EqualFold(k, "Host") {
			t.host = v
			continue
		}
		t.header.Set(k, v)
	}
	if t.header.Get("User-Agent") == "" {
		t.header.Set("User-Agent", "meridian-health")
	}
	if h.Host != "" {
		t.host = h.Host
		if u.Scheme == "https" {
			t.serverName = hostOnly(h.Host)
		}
	}
	return t, nil
}

// endpointName is the endpoint's URL, else its address, else its hostname.
func endpointName(e *config.Endpoint) string {
	switch {
	case e.URL != "":
		return e.URL
	case e.Address.IsValid():
		return e.Address.String()
	}
	return e.Hostname
}

// baseURL is the endpoint's URL, defaulting to http://ADDRESS or
// http://HOSTNAME as the config does.
func baseURL(e *config.Endpoint) string {
	if e.URL != "" {
		return e.URL
	}
	host := e.Hostname
	if e.Address.IsValid() {
		host = e.Address.String()
		if e.Address.Is6() {
			host = "[" + host + "]"
		}
	}
	return "http://" + host
}

// probeURL joins the endpoint's base URL and the health path (which may
// carry a query). Type https forces the https scheme; type http keeps the
// scheme of the endpoint's URL, so an https endpoint is probed over TLS.
func probeURL(base *url.URL, typ, path string) (*url.URL, error) {
	p, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("parsing health path %q: %w", path, err)
	}
	u := *base
	if typ == "https" {
		u.Scheme = "https"
	}
	u.User = nil
	u.Path = strings.TrimSuffix(base.Path, "/") + p.Path
	u.RawPath = ""
	u.RawQuery = p.RawQuery
	u.Fragment = ""
	return &u, nil
}

// hostPort is the URL's host and port, the port defaulting by scheme.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// hostOnly strips a port from a Host value.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// targetKey identifies an endpoint across reloads: the same region, the same
// endpoint and the same health settings keep their state.
func targetKey(region string, e *config.Endpoint, h config.Health) string {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Quote(s))
		b.WriteByte(' ')
	}
	field(region)
	field(e.URL)
	field(e.Address.String())
	field(e.Hostname)
	field(h.Type)
	field(h.Path)
	field(h.Host)
	for _, c := range h.Expect {
		field(strconv.Itoa(c))
	}
	field("|")
	for _, k := range slices.Sorted(maps.Keys(h.Headers)) {
		field(k)
		field(h.Headers[k])
	}
	field(h.Interval.D().String())
	field(h.Timeout.D().String())
	field(strconv.Itoa(h.Rise))
	field(strconv.Itoa(h.Fall))
	return b.String()
}
