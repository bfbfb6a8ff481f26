package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// staticCerts holds the certificates of tls.certificates, indexed by the
// DNS names they cover. It is built once and never changes.
type staticCerts struct {
	list   []*tls.Certificate          // config order; list[0] is the default
	files  []string                    // cert_file of each of list
	byName map[string]*tls.Certificate // lower-case SAN (exact or "*.suffix") → first certificate naming it
}

// loadStatic reads every certificate and key pair. Errors name the files.
func loadStatic(pairs []config.Certificate, log *slog.Logger) (*staticCerts, error) {
	s := &staticCerts{byName: make(map[string]*tls.Certificate)}
	for _, p := range pairs {
		c, err := loadPair(p)
		if err != nil {
			return nil, fmt.Errorf("loading certificate %q (key %q): %w", p.CertFile, p.KeyFile, err)
		}
		if len(c.Leaf.DNSNames) == 0 {
			log.Warn("certificate names no DNS name; it only serves as the default", "cert_file", p.CertFile)
		}
		if now := time.Now(); now.After(c.Leaf.NotAfter) {
			log.Warn("certificate has expired", "cert_file", p.CertFile, "not_after", c.Leaf.NotAfter)
		}
		for _, n := range c.Leaf.DNSNames {
			n = normalizeName(n)
			if _, taken := s.byName[n]; !taken {
				s.byName[n] = c
			}
		}
		s.list = append(s.list, c)
		s.files = append(s.files, p.CertFile)
	}
	return s, nil
}

// loadPair reads and parses one certificate and key pair; the returned
// certificate has its Leaf set.
func loadPair(p config.Certificate) (*tls.Certificate, error) {
	if p.CertFile == "" || p.KeyFile == "" {
		return nil, errors.New("cert_file and key_file are both required")
	}
	certPEM, err := os.ReadFile(p.CertFile)
	if err != nil {
		return nil, fmt.Errorf("reading cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading key_file: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		return nil, errors.New("no leaf certificate")
	}
	return &c, nil
}

// lookup returns the certificate covering serverName exactly or by a
// wildcard one label deep, or nil.
func (s *staticCerts) lookup(serverName string) *tls.Certificate {
	if serverName == "" || len(s.byName) == 0 {
		return nil
	}
	name := normalizeName(serverName)
	if c := s.byName[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return s.byName["*"+name[i:]]
	}
	return nil
}

// covers reports whether a static certificate serves name, which may itself
// be a wildcard ("*.example.com").
func (s *staticCerts) covers(name string) bool {
	if strings.HasPrefix(name, "*.") {
		return s.byName[name] != nil
	}
	return s.lookup(name) != nil
}

// fallback returns the default certificate (the first configured), or nil.
func (s *staticCerts) fallback() *tls.Certificate {
	if len(s.list) == 0 {
		return nil
	}
	return s.list[0]
}

// normalizeName lower-cases a DNS name and drops a final dot.
func normalizeName(n string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
}
