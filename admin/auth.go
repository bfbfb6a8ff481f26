package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"

	"github.com/meridian-edge/meridian/config"
)

// key is one token as the API checks it: the secret is kept only as its
// SHA-256 digest, so every comparison is between equal-length values.
type key struct {
	name  string
	write bool
	sum   [sha256.Size]byte
}

type keyring []key

func newKeyring(tokens []config.Token) keyring {
	ring := make(keyring, 0, len(tokens))
	for _, t := range tokens {
		if t.Secret == "" {
			continue // never matches; the config validator reports it
		}
		ring = append(ring, key{name: t.Name, write: t.Role == "write", sum: sha256.Sum256([]byte(t.Secret))})
	}
	return ring
}

// lookup finds the token whose secret is secret. It compares against every
// token in constant time and does not stop at a match, so the time taken
// tells nothing about which token, if any, matched.
func (k keyring) lookup(secret string) (key, bool) {
	sum := sha256.Sum256([]byte(secret))
	found := -1
	for i := range k {
		eq := subtle.ConstantTimeCompare(sum[:], k[i].sum[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return key{}, false
	}
	return k[found], true
}

// keySource hands out the keyring in force. With a current func it follows
// config reloads, rebuilding the keyring only when the token list changed.
type keySource struct {
	current func() config.Admin

	mu   sync.Mutex
	last []config.Token
	ring keyring
}

func (s *keySource) get() keyring {
	if s.current == nil {
		return s.ring
	}
	tokens := s.current().Tokens
	s.mu.Lock()
	defer s.mu.Unlock()
	if !sameTokens(tokens, s.last) {
		s.ring, s.last = newKeyring(tokens), tokens
	}
	return s.ring
}

// sameTokens reports whether a and b are the same slice (configs are
// immutable once loaded, so the same backing array means the same tokens).
func sameTokens(a, b []config.Token) bool {
	if len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0]
}

// authorize checks r's bearer token and returns the token. A missing or
// unknown token is 401; a read token on a change is 403.
func (a *API) authorize(r *http.Request, needWrite bool) (key, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return key{}, apiErrorf(http.StatusUnauthorized, "missing bearer token")
	}
	scheme, secret, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return key{}, apiErrorf(http.StatusUnauthorized, "authorization must be a bearer token")
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return key{}, apiErrorf(http.StatusUnauthorized, "missing bearer token")
	}
	k, ok := a.keys.get().lookup(secret)
	if !ok {
		return key{}, apiErrorf(http.StatusUnauthorized, "invalid token")
	}
	if needWrite && !k.write {
		return key{}, apiErrorf(http.StatusForbidden, "token %q is read-only; this change needs a write token", k.name)
	}
	return k, nil
}
