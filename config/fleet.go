package config

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Defaults of the fleet and etcd settings.
const (
	DefaultEtcdDialTimeout = 2 * time.Second
	DefaultNodeTTL         = 10 * time.Second
	DefaultFleetQuorum     = 0.5
)

// Limits of the fleet and etcd settings: an etcd lease lives whole seconds
// and etcd grants none shorter than about 2s with its default timings.
const (
	minNodeTTL     = 2 * time.Second
	maxNodeTTL     = 10 * time.Minute
	maxDialTimeout = time.Minute
)

// EtcdTLS is the client TLS of the etcd connection. CAFile alone verifies
// the server; CertFile and KeyFile together add a client certificate.
type EtcdTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Fleet tunes how nodes sharing an etcd state backend work together.
type Fleet struct {
	NodeTTL Duration `yaml:"node_ttl"` // lease of this node's registration; default 10s
	Health  string   `yaml:"health"`   // local (default) | quorum
	Quorum  float64  `yaml:"quorum"`   // health quorum: share of live nodes that must see a region down; default 0.5
}

func fleetDefaults(c *Config, pos *positions) {
	if e := c.State.Etcd; e != nil {
		setDuration(&e.DialTimeout, pos, "state.etcd.dial_timeout", DefaultEtcdDialTimeout)
	}
	setDuration(&c.Fleet.NodeTTL, pos, "fleet.node_ttl", DefaultNodeTTL)
	setString(&c.Fleet.Health, "local")
	if c.Fleet.Quorum == 0 && !pos.set("fleet.quorum") {
		c.Fleet.Quorum = DefaultFleetQuorum
	}
}

// etcdSecrets fills Etcd.Password from password_env or password_file and
// resolves the TLS file names against the config's folder. Both sources at
// once are left for the validator to report.
func (r *resolver) etcdSecrets(c *Config) {
	e := c.State.Etcd
	if e == nil {
		return
	}
	if t := e.TLS; t != nil {
		t.CAFile, t.CertFile, t.KeyFile = r.path(t.CAFile), r.path(t.CertFile), r.path(t.KeyFile)
	}
	switch {
	case e.PasswordEnv != "" && e.PasswordFile != "":
	case e.PasswordEnv != "":
		line := r.pos.line("state.etcd.password_env")
		v, ok := os.LookupEnv(e.PasswordEnv)
		switch {
		case !ok:
			r.errs.add(line, "state.etcd.password_env: environment variable %s is not set", e.PasswordEnv)
		case v == "":
			r.errs.add(line, "state.etcd.password_env: environment variable %s is empty", e.PasswordEnv)
		default:
			e.Password = v
		}
	case e.PasswordFile != "":
		line := r.pos.line("state.etcd.password_file")
		e.PasswordFile = r.path(e.PasswordFile)
		data, err := readFile(e.PasswordFile, maxSecretFile)
		if err != nil {
			r.errs.add(line, "state.etcd.password_file: %v", err)
			return
		}
		v := strings.TrimRight(string(data), " \t\r\n")
		if v == "" {
			r.errs.add(line, "state.etcd.password_file: %s is empty", e.PasswordFile)
			return
		}
		e.Password = v
	}
}

func (v *validator) etcd(e *Etcd) {
	if e.PasswordEnv != "" && e.PasswordFile != "" {
		v.add("state.etcd.password_env", "state.etcd: set at most one of password_env and password_file")
	}
	hasPassword := e.PasswordEnv != "" || e.PasswordFile != "" || (!v.fromFile && e.Password != "")
	switch {
	case e.Username != "" && !hasPassword:
		v.add("state.etcd.username", "state.etcd.username needs password_env or password_file")
	case e.Username == "" && hasPassword:
		v.add("state.etcd.username", "state.etcd: a password needs state.etcd.username")
	}
	if d := e.DialTimeout.D(); d <= 0 || d > maxDialTimeout {
		v.add("state.etcd.dial_timeout", "state.etcd.dial_timeout must be above 0 and at most %s, got %s", maxDialTimeout, e.DialTimeout)
	}
	if t := e.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.add("state.etcd.tls", "state.etcd.tls: cert_file and key_file go together")
		}
		if t.CAFile == "" && t.CertFile == "" {
			v.add("state.etcd.tls", "state.etcd.tls: set ca_file, or cert_file and key_file")
		}
		for i, ep := range e.Endpoints {
			if strings.HasPrefix(ep, "http://") {
				v.add(itemPath("state.etcd.endpoints", i), "state.etcd.endpoints: %q: state.etcd.tls needs https:// endpoints", ep)
			}
		}
	}
}

func (v *validator) fleet(c *Config) {
	f := &c.Fleet
	d := f.NodeTTL.D()
	switch {
	case d < minNodeTTL || d > maxNodeTTL:
		v.add("fleet.node_ttl", "fleet.node_ttl must be between %s and %s, got %s", minNodeTTL, maxNodeTTL, f.NodeTTL)
	case d%time.Second != 0:
		v.add("fleet.node_ttl", "fleet.node_ttl must be whole seconds (an etcd lease), got %s", f.NodeTTL)
	}
	if !oneOf(f.Health, "local", "quorum") {
		v.add("fleet.health", "fleet.health %q is not one of local, quorum", f.Health)
	}
	if f.Quorum <= 0 || f.Quorum >= 1 {
		v.add("fleet.quorum", "fleet.quorum must be above 0 and below 1, got %s", fmt.Sprint(f.Quorum))
	}
}
