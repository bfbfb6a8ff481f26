package config

import (
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Config is a whole meridian configuration file, defaults applied.
type Config struct {
	Node     Node      `yaml:"node"`
	Listen   Listen    `yaml:"listen"`
	GeoIP    GeoIP     `yaml:"geoip"`
	TLS      TLS       `yaml:"tls"`
	Admin    Admin     `yaml:"admin"`
	State    State     `yaml:"state"`
	BGP      *BGP      `yaml:"bgp"` // nil when not set: no BGP
	Fleet    Fleet     `yaml:"fleet"`
	DNS      DNS       `yaml:"dns"`
	Regions  []Region  `yaml:"regions"`
	Zones    []Zone    `yaml:"zones"`
	Services []Service `yaml:"services"`
	// AccessLog is the proxy's per-request log (accesslog.go).
	AccessLog AccessLog `yaml:"access_log"`

	// File is the path the config was read from ("" when parsed from bytes
	// without a name). Set by Load and Parse, never by YAML.
	File string `yaml:"-"`
}

// Node describes this edge node.
type Node struct {
	Name            string       `yaml:"name"`     // default: host name
	Location        *Location    `yaml:"location"` // nil when not set
	Addresses       []netip.Addr `yaml:"addresses"`
	Drain           Duration     `yaml:"drain"`            // default 5s
	ShutdownTimeout Duration     `yaml:"shutdown_timeout"` // default 30s
}

// Location is a point on the globe in degrees.
type Location struct {
	Lat float64 `yaml:"lat"`
	Lon float64 `yaml:"lon"`
}

// Listen lists the addresses the node binds.
type Listen struct {
	DNS   []string `yaml:"dns"`   // host:port, UDP and TCP on each
	HTTP  []string `yaml:"http"`  // host:port
	HTTPS []string `yaml:"https"` // host:port, needs TLS
	Admin string   `yaml:"admin"` // host:port; default 127.0.0.1:9053

	Connections Connections `yaml:"connections"` // limits of the http and https listeners
}

// Connections bounds the client connections of the http and https
// listeners together.
type Connections struct {
	Max          int `yaml:"max"`            // default 20000
	MaxPerSource int `yaml:"max_per_source"` // one IPv4 address or IPv6 /64; default 256; 0: no limit
	// IdleTimeout closes keep-alive connections that carry no request;
	// default 120s. Above BusyAt of Max it is BusyIdleTimeout instead.
	IdleTimeout     Duration `yaml:"idle_timeout"`
	BusyIdleTimeout Duration `yaml:"busy_idle_timeout"` // default 5s
	BusyAt          Percent  `yaml:"busy_at"`           // default 80%
}

// GeoIP selects the GeoIP database.
type GeoIP struct {
	Database string `yaml:"database"` // "" = built-in database
}

// TLS configures the https listeners.
type TLS struct {
	Certificates []Certificate `yaml:"certificates"`
	ACME         *ACME         `yaml:"acme"` // nil when not set
}

// Certificate is a static certificate and key pair.
type Certificate struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ACME configures automatic certificates.
type ACME struct {
	Email     string `yaml:"email"`
	CA        string `yaml:"ca"`        // directory URL; default Let's Encrypt production
	Challenge string `yaml:"challenge"` // dns-01 (default) | http-01
	// CARoot is an optional PEM file of roots to trust for the CA's
	// directory (a private or test CA).
	CARoot string `yaml:"ca_root"`
	// Storage is where certificates and account keys are kept; default
	// "./meridian-certs".
	Storage string `yaml:"storage"`
}

// Admin configures admin API authentication.
type Admin struct {
	Tokens []Token `yaml:"tokens"`
}

// Token is one admin API bearer token. Exactly one of SecretEnv and
// SecretFile is set; Secret holds the resolved value after Load. A relative
// SecretFile is relative to the config file's folder (stored resolved).
type Token struct {
	Name       string `yaml:"name"`
	Role       string `yaml:"role"` // read | write
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
	Secret     string `yaml:"-"`
}

// State selects where operator state is kept.
type State struct {
	Backend string `yaml:"backend"` // file (default) | etcd
	Path    string `yaml:"path"`    // file backend; default ./meridian-state.json
	Etcd    *Etcd  `yaml:"etcd"`
}

// Etcd configures the etcd state backend. At most one of PasswordEnv and
// PasswordFile is set; Password holds the resolved value after Load. A
// relative PasswordFile or TLS file is relative to the config file's folder
// (stored resolved).
type Etcd struct {
	Endpoints    []string `yaml:"endpoints"`
	Prefix       string   `yaml:"prefix"` // default /meridian/
	Username     string   `yaml:"username"`
	PasswordEnv  string   `yaml:"password_env"`
	PasswordFile string   `yaml:"password_file"`
	Password     string   `yaml:"-"`
	TLS          *EtcdTLS `yaml:"tls"`          // nil when not set
	DialTimeout  Duration `yaml:"dial_timeout"` // default 2s
}

// Region is a group of endpoints that serve together.
type Region struct {
	Name       string     `yaml:"name"`
	Location   *Location  `yaml:"location"`
	Endpoints  []Endpoint `yaml:"endpoints"`
	Health     Health     `yaml:"health"`
	MinHealthy int        `yaml:"min_healthy"` // default 1
	// Replication and Promote describe the region's data replica (SPEC
	// section 10); nil when not set.
	Replication *Replication `yaml:"replication"`
	Promote     *Promote     `yaml:"promote"`

	Line int `yaml:"-"` // line of the region in its file
}

// Endpoint is one upstream of a region. At least one of Address and
// Hostname is set. URL is where the proxy and the health probes go.
type Endpoint struct {
	Address  netip.Addr `yaml:"address"`  // DNS A/AAAA answer; zero when unset
	Hostname string     `yaml:"hostname"` // DNS CNAME answer, fully qualified without the final dot
	URL      string     `yaml:"url"`      // http(s)://host:port base; default http://ADDRESS
	Weight   int        `yaml:"weight"`   // default 1

	Line int `yaml:"-"`
}

// Health configures a region's probes.
type Health struct {
	Type     string            `yaml:"type"`     // http (default) | https | tcp | none
	Path     string            `yaml:"path"`     // default /health/ready
	Host     string            `yaml:"host"`     // Host header and SNI; default the endpoint's host
	Expect   []int             `yaml:"expect"`   // empty = any 2xx
	Headers  map[string]string `yaml:"headers"`  // extra request headers
	Interval Duration          `yaml:"interval"` // default 2s
	Timeout  Duration          `yaml:"timeout"`  // default 1s
	Rise     int               `yaml:"rise"`     // default 2
	Fall     int               `yaml:"fall"`     // default 2
}

// Zone is an authoritative DNS zone.
type Zone struct {
	Name        string   `yaml:"name"` // lower case, no final dot
	Nameservers []string `yaml:"nameservers"`
	SOA         SOA      `yaml:"soa"`
	File        string   `yaml:"file"`    // optional master file, relative to the config file's folder
	Records     []string `yaml:"records"` // master-file lines relative to the zone

	// RRs are the static records of File and Records, parsed by Load and
	// Parse (owner names fully qualified and lower case, missing TTLs set to
	// SOA.TTL).
	RRs []dns.RR `yaml:"-"`

	Line int `yaml:"-"`
}

// SOA holds the zone's SOA fields an operator sets; the serial is derived.
type SOA struct {
	Email       string `yaml:"email"`        // default hostmaster@ZONE
	TTL         int    `yaml:"ttl"`          // seconds; default 3600
	NegativeTTL int    `yaml:"negative_ttl"` // seconds; default 60
	Refresh     int    `yaml:"refresh"`      // default 7200
	Retry       int    `yaml:"retry"`        // default 3600
	Expire      int    `yaml:"expire"`       // default 1209600
}

// Service is a steered name set.
type Service struct {
	Name        string         `yaml:"name"`
	Hostnames   []string       `yaml:"hostnames"` // lower case, no final dot
	Mode        string         `yaml:"mode"`      // dns (default) | proxy
	Policy      string         `yaml:"policy"`    // latency (default) | geo | failover | weighted
	Regions     []string       `yaml:"regions"`   // priority order
	Geo         []GeoRule      `yaml:"geo"`
	Dials       map[string]int `yaml:"dials"`        // region → 0..100; missing = 100 (see DialFor)
	TTL         Duration       `yaml:"ttl"`          // default 30s
	TTLDegraded Duration       `yaml:"ttl_degraded"` // default max(ttl/4, 1s)
	AllDown     string         `yaml:"all_down"`     // answer (default) | nodata
	Answers     int            `yaml:"answers"`      // default 1
	Salt        string         `yaml:"salt"`         // per-service hashing salt; default the service name
	Proxy       Proxy          `yaml:"proxy"`
	// Writes and Failover are the single-writer settings (SPEC section
	// 10); nil when not set.
	Writes   *Writes   `yaml:"writes"`
	Failover *Failover `yaml:"failover"`

	Line int `yaml:"-"`
}

// DialFor returns the configured initial dial of region r (100 when unset).
func (s *Service) DialFor(r string) int {
	if d, ok := s.Dials[r]; ok {
		return d
	}
	return 100
}

// GeoRule maps client locations to preferred regions.
type GeoRule struct {
	// ISO country (DE), continent (EU), subdivision (US-CA) or "default";
	// upper case after Parse ("default" stays lower case). AF, AS, NA and
	// SA name both a continent and a country.
	Match   []string `yaml:"match"`
	Regions []string `yaml:"regions"` // in preference order
	Fence   bool     `yaml:"fence"`

	Line int `yaml:"-"`
}

// Proxy configures the reverse proxy for a proxy-mode service.
type Proxy struct {
	Retries        int            `yaml:"retries"`         // default 2
	RetryBudget    Percent        `yaml:"retry_budget"`    // default 20%
	RetryOn        []string       `yaml:"retry_on"`        // default connect-failure, timeout, 502, 503, 504
	ConnectTimeout Duration       `yaml:"connect_timeout"` // default 2s
	Timeout        Duration       `yaml:"timeout"`         // default 30s
	MaxRetryBody   ByteSize       `yaml:"max_retry_body"`  // default 64KiB
	Sticky         string         `yaml:"sticky"`          // none (default) | client-ip | cookie
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	Default        bool           `yaml:"default"` // serves requests whose Host matches no service
}

// Duration is a time.Duration written as a Go duration string ("2s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Percent is a share written as "20%" (or a bare number of percent).
type Percent float64

// ByteSize is a size written as "64KiB", "1MiB", "512" (bytes).
type ByteSize int64
