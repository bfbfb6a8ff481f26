package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/certmagic"

	"github.com/meridian-edge/meridian/config"
)

// Defaults of tls.acme.
const (
	defaultCA      = certmagic.LetsEncryptProductionCA
	defaultStorage = "./meridian-certs"

	challengeDNS01  = "dns-01"
	challengeHTTP01 = "http-01"
)

// acmeSettings is tls.acme checked and resolved; building it starts nothing.
type acmeSettings struct {
	ca        string
	email     string
	challenge string         // challengeDNS01 | challengeHTTP01
	roots     *x509.CertPool // nil = system roots
	storage   certmagic.Storage
	solver    *dnsSolver // dns-01 only
	httpPort  int        // http-01 only; 0 = 80
}

func newACMESettings(a config.ACME, opts Options, log *slog.Logger) (*acmeSettings, error) {
	s := &acmeSettings{ca: a.CA, email: a.Email, storage: opts.Storage, httpPort: opts.HTTPPort}
	if s.ca == "" {
		s.ca = defaultCA
	}
	if u, err := url.Parse(s.ca); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("ca %q: want an https directory URL", s.ca)
	}
	dir := a.Storage
	if dir == "" {
		dir = defaultStorage
	}
	switch st := s.storage.(type) {
	case nil:
		s.storage = &certmagic.FileStorage{Path: dir}
	case *EtcdStorage:
		// tls.acme.storage keeps a copy, read while etcd is unreachable.
		s.storage = &localCopy{shared: st, local: &certmagic.FileStorage{Path: dir}, log: log}
	}
	switch strings.ToLower(a.Challenge) {
	case "", challengeDNS01:
		if opts.TXT == nil {
			return nil, errors.New("the dns-01 challenge needs a TXT publisher (meridian's DNS server)")
		}
		s.challenge = challengeDNS01
		s.solver = &dnsSolver{
			txt:      opts.TXT,
			resolver: opts.DNSResolver,
			timeout:  dnsWaitTimeout,
			interval: dnsWaitInterval,
			log:      log,
		}
	case challengeHTTP01:
		s.challenge = challengeHTTP01
	default:
		return nil, fmt.Errorf("challenge %q: want dns-01 or http-01", a.Challenge)
	}
	if opts.HTTPPort < 0 || opts.HTTPPort > 65535 {
		return nil, fmt.Errorf("http port %d: out of range", opts.HTTPPort)
	}
	if a.CARoot != "" {
		pemBytes, err := os.ReadFile(a.CARoot)
		if err != nil {
			return nil, fmt.Errorf("reading ca_root: %w", err)
		}
		s.roots = x509.NewCertPool()
		if !s.roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("ca_root %q: no PEM certificate in it", a.CARoot)
		}
	}
	return s, nil
}

// acmeNames normalizes and checks names, and drops duplicates and names a
// static certificate covers.
func (m *Manager) acmeNames(names []string) ([]string, error) {
	var out []string
	for _, raw := range names {
		n := normalizeName(raw)
		if err := checkName(n); err != nil {
			return nil, fmt.Errorf("name %q: %w", raw, err)
		}
		if strings.HasPrefix(n, "*.") && m.acme.challenge != challengeDNS01 {
			return nil, fmt.Errorf("name %q: a wildcard certificate needs the dns-01 challenge", raw)
		}
		if m.static.covers(n) {
			m.log.Debug("static certificate covers hostname; not managed over acme", "hostname", n)
			continue
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// checkName accepts a DNS name, optionally with one leading "*." label.
func checkName(n string) error {
	if n == "" {
		return errors.New("empty")
	}
	rest := strings.TrimPrefix(n, "*.")
	if rest == "" || strings.ContainsAny(rest, "* \t/:") || strings.Contains(rest, "..") ||
		strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "-") {
		return errors.New("not a DNS name")
	}
	return nil
}

// startACME builds the certmagic cache, configuration and issuer and
// publishes them to the handshake and challenge paths. m.mu is held.
func (m *Manager) startACME() {
	a := m.acme
	zl := zapLogger(m.log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			return m.magic.Load(), nil
		},
		Logger: zl,
	})
	magic := certmagic.New(m.cache, certmagic.Config{
		Storage: a.storage,
		Logger:  zl,
	})
	template := certmagic.ACMEIssuer{
		CA:     a.ca,
		Email:  a.email,
		Agreed: true, // configuring tls.acme accepts the CA's subscriber agreement
		// Only the configured challenge: nothing binds :443 for TLS-ALPN.
		DisableTLSALPNChallenge: true,
		DisableHTTPChallenge:    a.challenge != challengeHTTP01,
		AltHTTPPort:             a.httpPort,
		TrustedRoots:            a.roots,
		Logger:                  zl,
	}
	if a.solver != nil {
		template.DNS01Solver = a.solver
	}
	issuer := certmagic.NewACMEIssuer(magic, template)
	magic.Issuers = []certmagic.Issuer{issuer}
	m.magic.Store(magic)
	m.issuer.Store(issuer)
}
