package anycast

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Targets are the node's own listeners the self-check asks.
type Targets struct {
	DNS   []net.Addr // bound DNS listeners; each is asked over UDP for each zone's SOA
	Zones []string   // zone names
	HTTP  []net.Addr // bound http proxy listeners; any HTTP response passes
	HTTPS []net.Addr // bound https proxy listeners; a TLS handshake or a TLS alert passes
}

// selfCheckHost is the Host the HTTP probe sends: a name no service may
// have (RFC 6761 .invalid), so the proxy answers it itself.
const selfCheckHost = "meridian-self-check.invalid"

// SelfCheck asks each target once, each probe bounded by timeout, and
// returns the first failure.
func SelfCheck(ctx context.Context, t Targets, timeout time.Duration) error {
	for _, a := range t.DNS {
		for _, z := range t.Zones {
			if err := checkSOA(ctx, dialable(a), z, timeout); err != nil {
				return fmt.Errorf("dns %s: SOA %s: %w", a, z, err)
			}
		}
	}
	for _, a := range t.HTTP {
		if err := checkHTTP(ctx, dialable(a), timeout); err != nil {
			return fmt.Errorf("http %s: %w", a, err)
		}
	}
	for _, a := range t.HTTPS {
		if err := checkTLS(ctx, dialable(a), timeout); err != nil {
			return fmt.Errorf("https %s: %w", a, err)
		}
	}
	return nil
}

// dialable turns a bound address into one to dial: a wildcard listener is
// asked on loopback.
func dialable(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := ap.Addr()
	if ip.IsUnspecified() {
		if ip.Is4() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			ip = netip.IPv6Loopback()
		}
	}
	return netip.AddrPortFrom(ip, ap.Port()).String()
}

func checkSOA(ctx context.Context, addr, zone string, timeout time.Duration) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return err
	}
	switch {
	case r.Rcode != dns.RcodeSuccess:
		return fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	case !r.Authoritative:
		return errors.New("answer is not authoritative")
	}
	for _, rr := range r.Answer {
		if _, ok := rr.(*dns.SOA); ok {
			return nil
		}
	}
	return errors.New("no SOA in the answer")
}

// probeClient sends the HTTP probes: no proxies from the environment, no
// connection reuse, so each probe tests accepting a connection.
var probeClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func checkHTTP(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return err
	}
	req.Host = selfCheckHost
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

func checkTLS(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{
		ServerName: selfCheckHost,
		// The probe checks that the listener completes handshakes; the
		// certificate it serves for an unknown name is not the point.
		InsecureSkipVerify: true, //nolint:gosec // see above
		MinVersion:         tls.VersionTLS12,
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		// An alert (no certificate for the probe's name) is still the
		// proxy answering.
		if _, ok := errors.AsType[tls.AlertError](err); ok {
			return nil
		}
		return err
	}
	return conn.Close()
}
