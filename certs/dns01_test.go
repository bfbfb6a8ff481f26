package certs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

func dnsChallenge(identifier string) acme.Challenge {
	return acme.Challenge{
		Type:             acme.ChallengeTypeDNS01,
		Identifier:       acme.Identifier{Type: "dns", Value: identifier},
		Token:            "tok",
		KeyAuthorization: "tok.thumbprint-of-" + identifier,
	}
}

func TestDNSSolverPresentWaitCleanUp(t *testing.T) {
	t.Parallel()
	z := startZoneServer(t)
	s := &dnsSolver{txt: z, resolver: z.addr, timeout: 5 * time.Second, interval: 20 * time.Millisecond, log: slog.Default()}
	ctx := context.Background()

	// A name and its wildcard share one record name; both values are served.
	name, wild := dnsChallenge("Api.Example.com"), dnsChallenge("api.example.com")
	wild.KeyAuthorization = "tok.wildcard"
	for _, ch := range []acme.Challenge{name, wild} {
		if err := s.Present(ctx, ch); err != nil {
			t.Fatalf("Present: %v", err)
		}
	}
	if vals := z.txt["_acme-challenge.api.example.com"]; len(vals) != 2 {
		t.Fatalf("published values %q at _acme-challenge.api.example.com, want 2", vals)
	}
	for _, ch := range []acme.Challenge{name, wild} {
		if err := s.Wait(ctx, ch); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if err := s.CleanUp(ctx, ch); err != nil {
			t.Fatalf("CleanUp: %v", err)
		}
	}
	if p, r, live := z.counts(); p != 2 || r != 2 || live != 0 {
		t.Errorf("presented %d, removed %d, live %d; want 2, 2, 0", p, r, live)
	}
}

func TestDNSSolverWaitTimesOut(t *testing.T) {
	t.Parallel()
	z := startZoneServer(t)
	z.setSilent(true)
	s := &dnsSolver{txt: z, resolver: z.addr, timeout: 300 * time.Millisecond, interval: 20 * time.Millisecond, log: slog.Default()}
	ch := dnsChallenge("api.example.com")
	if err := s.Present(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Wait(context.Background(), ch)
	if err == nil {
		t.Fatal("Wait succeeded although the record is not served")
	}
	want := `waiting for dns-01 record "_acme-challenge.api.example.com" at ` + z.addr + ": not served within 300ms: value not in the answer"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Wait took %s, want about 300ms", d)
	}
}

func TestDNSSolverWaitWithoutResolver(t *testing.T) {
	t.Parallel()
	z := newFakeTXT()
	z.setSilent(true)
	s := &dnsSolver{txt: z, timeout: time.Hour, interval: time.Hour, log: slog.Default()}
	if err := s.Wait(context.Background(), dnsChallenge("api.example.com")); err != nil {
		t.Errorf("Wait without a resolver: %v", err)
	}
}

// failingTXT refuses every record, as a DNS server does for a name outside
// its zones.
type failingTXT struct{}

func (failingTXT) PresentTXT(fqdn, _ string) error { return errors.New("not in a configured zone") }
func (failingTXT) CleanupTXT(fqdn, _ string) error { return errors.New("not in a configured zone") }

func TestDNSSolverErrors(t *testing.T) {
	t.Parallel()
	s := &dnsSolver{txt: failingTXT{}, log: slog.Default()}
	ch := dnsChallenge("api.example.org")
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"present", func() error { return s.Present(context.Background(), ch) }, `presenting dns-01 record "_acme-challenge.api.example.org": not in a configured zone`},
		{"cleanup", func() error { return s.CleanUp(context.Background(), ch) }, `removing dns-01 record "_acme-challenge.api.example.org": not in a configured zone`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
