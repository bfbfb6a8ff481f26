package certs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// staticCert is one pair of tls.certificates. What handshakes serve is
// cur, replaced (never changed in place) when its OCSP staple changes.
type staticCert struct {
	file string // cert_file
	name string // metric label: first DNS name, common name or file base name
	leaf *tls.Certificate
	cur  atomic.Pointer[tls.Certificate]
	ocsp *ocspState // nil when the certificate names no OCSP responder
}

// staticCerts holds the certificates of tls.certificates, indexed by the
// DNS names they cover. Its set of certificates never changes.
//
// Several certificates may name the same host, typically an ECDSA and an
// RSA one: a handshake gets the first the client supports, ECDSA (and
// Ed25519) ones before RSA ones, else the first of them.
type staticCerts struct {
	list    []*staticCert            // config order; list[0] is the default
	byName  map[string][]*staticCert // lower-case SAN (exact or "*.suffix") → certificates naming it
	deflt   []*staticCert            // list[0] and the later certificates with the same names
	hasOCSP bool                     // some certificate has OCSP state
}

// loadStatic reads every certificate and key pair. Errors name the files.
func loadStatic(pairs []config.Certificate, log *slog.Logger) (*staticCerts, error) {
	s := &staticCerts{byName: make(map[string][]*staticCert)}
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
		sc := &staticCert{file: p.CertFile, name: staticName(c, p.CertFile), leaf: c}
		sc.cur.Store(c)
		for _, n := range c.Leaf.DNSNames {
			n = normalizeName(n)
			if !slices.Contains(s.byName[n], sc) {
				s.byName[n] = append(s.byName[n], sc)
			}
		}
		s.list = append(s.list, sc)
	}
	for _, cands := range s.byName {
		slices.SortStableFunc(cands, func(a, b *staticCert) int { return keyRank(a.leaf) - keyRank(b.leaf) })
	}
	if len(s.list) > 0 {
		first := sortedNames(s.list[0].leaf)
		for _, sc := range s.list {
			if slices.Equal(sortedNames(sc.leaf), first) {
				s.deflt = append(s.deflt, sc)
			}
		}
		slices.SortStableFunc(s.deflt, func(a, b *staticCert) int { return keyRank(a.leaf) - keyRank(b.leaf) })
	}
	return s, nil
}

// keyRank orders certificates by key type for selection: ECDSA and
// Ed25519 (smaller, faster handshakes) before RSA.
func keyRank(c *tls.Certificate) int {
	switch c.PrivateKey.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey:
		return 0
	}
	return 1
}

func sortedNames(c *tls.Certificate) []string {
	names := make([]string, 0, len(c.Leaf.DNSNames))
	for _, n := range c.Leaf.DNSNames {
		names = append(names, normalizeName(n))
	}
	slices.Sort(names)
	return names
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

// lookup returns the certificate for hello covering its server name
// exactly or by a wildcard one label deep, or nil.
func (s *staticCerts) lookup(hello *tls.ClientHelloInfo) *tls.Certificate {
	if hello.ServerName == "" || len(s.byName) == 0 {
		return nil
	}
	name := normalizeName(hello.ServerName)
	if cands := s.byName[name]; cands != nil {
		return pick(hello, cands)
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if cands := s.byName["*"+name[i:]]; cands != nil {
			return pick(hello, cands)
		}
	}
	return nil
}

// pick returns the first of cands the client supports, else the first.
func pick(hello *tls.ClientHelloInfo, cands []*staticCert) *tls.Certificate {
	if len(cands) > 1 {
		for _, sc := range cands {
			if c := sc.cur.Load(); hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	return cands[0].cur.Load()
}

// covers reports whether a static certificate serves name, which may itself
// be a wildcard ("*.example.com").
func (s *staticCerts) covers(name string) bool {
	if s.byName[name] != nil {
		return true
	}
	if strings.HasPrefix(name, "*.") {
		return false
	}
	i := strings.IndexByte(name, '.')
	return i > 0 && s.byName["*"+name[i:]] != nil
}

// fallback returns the default certificate for hello (the first
// configured, or one with the same names the client supports better), or
// nil.
func (s *staticCerts) fallback(hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(s.deflt) == 0 {
		return nil
	}
	return pick(hello, s.deflt)
}

// staticName labels a static certificate: its first DNS name, else its
// subject's common name, else its file's base name.
func staticName(c *tls.Certificate, file string) string {
	switch {
	case len(c.Leaf.DNSNames) > 0:
		return c.Leaf.DNSNames[0]
	case c.Leaf.Subject.CommonName != "":
		return c.Leaf.Subject.CommonName
	}
	return filepath.Base(file)
}

// normalizeName lower-cases a DNS name and drops a final dot.
func normalizeName(n string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
}
