package certs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

// TXTPublisher publishes ACME challenge TXT records in meridian's own zones
// (dnsserver.Server implements it).
//
// fqdn is a fully qualified name without the final dot, in lower case
// ("_acme-challenge.api.example.com"). Several values may be present at one
// name at once (a name and its wildcard are validated together); CleanupTXT
// removes only the value given.
type TXTPublisher interface {
	PresentTXT(fqdn, value string) error
	CleanupTXT(fqdn, value string) error
}

// Defaults of the DNS-01 propagation check.
const (
	// dnsWaitTimeout bounds how long a challenge waits for meridian's own DNS
	// listener to serve a record it was just handed.
	dnsWaitTimeout = 30 * time.Second
	// dnsWaitInterval is the pause between two checks.
	dnsWaitInterval = 250 * time.Millisecond
	// dnsQueryTimeout bounds one query to the DNS listener.
	dnsQueryTimeout = 2 * time.Second
)

// dnsSolver answers ACME DNS-01 challenges by publishing their TXT records
// in meridian's own zones, in-process: no DNS provider API and no zone
// lookup is involved.
type dnsSolver struct {
	txt      TXTPublisher
	resolver string        // host:port of meridian's DNS listener; "" = trust PresentTXT
	timeout  time.Duration // how long Wait checks before giving up
	interval time.Duration // between checks
	log      *slog.Logger
}

var (
	_ acmez.Solver = (*dnsSolver)(nil)
	_ acmez.Waiter = (*dnsSolver)(nil)
)

// txtRecord returns the record name and value a DNS-01 challenge asks for.
func txtRecord(ch acme.Challenge) (name, value string) {
	return normalizeName(ch.DNS01TXTRecordName()), ch.DNS01KeyAuthorization()
}

// Present publishes the challenge's TXT record.
func (s *dnsSolver) Present(_ context.Context, ch acme.Challenge) error {
	name, value := txtRecord(ch)
	if err := s.txt.PresentTXT(name, value); err != nil {
		return fmt.Errorf("presenting dns-01 record %q: %w", name, err)
	}
	s.log.Debug("dns-01 record presented", "name", name, "identifier", ch.Identifier.Value)
	return nil
}

// CleanUp withdraws the challenge's TXT record.
func (s *dnsSolver) CleanUp(_ context.Context, ch acme.Challenge) error {
	name, value := txtRecord(ch)
	if err := s.txt.CleanupTXT(name, value); err != nil {
		return fmt.Errorf("removing dns-01 record %q: %w", name, err)
	}
	s.log.Debug("dns-01 record removed", "name", name, "identifier", ch.Identifier.Value)
	return nil
}

// Wait returns once meridian's own DNS listener answers the challenge's
// record, so the CA is not asked to validate before the record is served.
// Without a resolver it returns at once.
func (s *dnsSolver) Wait(ctx context.Context, ch acme.Challenge) error {
	if s.resolver == "" {
		return nil
	}
	name, value := txtRecord(ch)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	var last error // the latest finding; a query cut short by the deadline tells nothing new
	for {
		err := s.served(ctx, name, value)
		if err == nil {
			return nil
		}
		if last == nil || (ctx.Err() == nil && !isTimeout(err)) {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for dns-01 record %q at %s: not served within %s: %w", name, s.resolver, s.timeout, last)
		case <-tick.C:
		}
	}
}

// isTimeout reports whether err is a network timeout, as when the deadline
// of the wait cuts a query short.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// served asks the resolver for name's TXT records and reports, as nil, that
// value is among them.
func (s *dnsSolver) served(ctx context.Context, name, value string) error {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Net: "udp", Timeout: dnsQueryTimeout}
	in, _, err := c.ExchangeContext(ctx, q, s.resolver)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, q, s.resolver)
	}
	if err != nil {
		return err
	}
	if in.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("answer is %s", dns.RcodeToString[in.Rcode])
	}
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TXT); ok && strings.Join(t.Txt, "") == value {
			return nil
		}
	}
	return errors.New("value not in the answer")
}
