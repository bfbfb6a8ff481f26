package proxy

import (
	"bytes"
	"net/http"
	"net/netip"
	"strings"
)

// route returns the service for r's Host (port stripped, case and final dot
// ignored), the default service when no hostname matches, or nil. On TLS
// connections whose SNI names another service, it returns nil as well: the
// client must open a new connection (421).
func (t *table) route(r *http.Request) *service {
	sni := ""
	if r.TLS != nil {
		sni = r.TLS.ServerName
	}
	return t.withSNI(t.lookup(r.Host), sni)
}

// withSNI completes a Host lookup: the default service when the Host
// matched none, and nil when a TLS connection's SNI names another service.
func (t *table) withSNI(svc *service, sni string) *service {
	if svc == nil {
		svc = t.fallback
	}
	if svc != nil && sni != "" {
		if s := t.lookup(sni); s != nil && s != svc {
			return nil
		}
	}
	return svc
}

// lookupBytes is lookup for a Host value in a byte slice; it does not
// allocate.
func (t *table) lookupBytes(host []byte) *service {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			host = host[1:i]
		}
	} else if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host, ':') == i {
		host = host[:i]
	}
	host = bytes.TrimSuffix(host, []byte("."))
	var buf [256]byte
	if len(host) > len(buf) {
		return nil // no configured hostname is that long
	}
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return t.hosts[string(buf[:len(host)])]
}

// lookup finds the service owning hostname host (which may carry a port).
// It does not allocate for lower-case names.
func (t *table) lookup(host string) *service {
	host = stripPort(host)
	host = strings.TrimSuffix(host, ".")
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	return t.hosts[host]
}

// stripPort removes a port from a Host value ("a.example:80", "[::1]:80",
// "[::1]") and the brackets of an IPv6 literal.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// peerAddr parses the TCP peer's address from RemoteAddr, without an IPv6
// zone; the zero Addr when it is not an IP (a unix socket).
func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// trusts reports whether a is one of the service's trusted proxies.
func (s *service) trusts(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientFromXFF walks X-Forwarded-For from the nearest hop backwards and
// returns the first address that is not a trusted proxy. A malformed entry
// stops the walk at the last good address; when every hop is trusted the
// farthest one is the client.
func (s *service) clientFromXFF(peer netip.Addr, values []string) netip.Addr {
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for end := len(v); end > 0; {
			start := strings.LastIndexByte(v[:end], ',') + 1
			item := strings.TrimSpace(v[start:end])
			end = start - 1
			if item == "" {
				continue
			}
			a, ok := parseHop(item)
			if !ok {
				return client
			}
			client = a
			if !s.trusts(a) {
				return a
			}
		}
	}
	return client
}

// parseHop parses one X-Forwarded-For entry: an address, optionally with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}
