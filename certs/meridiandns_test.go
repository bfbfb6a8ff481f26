package certs

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/dnsserver"
)

// startMeridianDNS runs meridian's own authoritative DNS server on
// 127.0.0.1 (UDP and TCP) with one zone, example.com, whose static records
// point www and api at 127.0.0.1. It stops when the test ends.
func startMeridianDNS(t *testing.T) (*dnsserver.Server, string) {
	t.Helper()
	srv := dnsserver.New(dnsserver.Options{Logger: testLogger(t), UDPSockets: 1})
	cfg := &config.Config{Zones: []config.Zone{{
		Name:        "example.com",
		Nameservers: []string{"ns1.example.com"},
		SOA:         config.SOA{Email: "hostmaster@example.com", TTL: 3600, NegativeTTL: 60},
		Records: []string{
			"ns1 60 A 127.0.0.1",
			"www 60 A 127.0.0.1",
			"api 60 A 127.0.0.1",
		},
	}}}
	if err := srv.Update(dnsserver.Input{Config: cfg}); err != nil {
		t.Fatalf("loading the test zone: %v", err)
	}
	if err := srv.ListenAndServe(context.Background(), []string{"127.0.0.1:0"}); err != nil {
		t.Fatalf("starting meridian's DNS server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("stopping meridian's DNS server: %v", err)
		}
	})
	return srv, srv.Addrs()[0].String()
}

// countingTXT passes records to a TXTPublisher and keeps count of them.
type countingTXT struct {
	next TXTPublisher

	mu        sync.Mutex
	presented []string // "name value", in order
	removed   int
	live      map[string]int
}

func newCountingTXT(next TXTPublisher) *countingTXT {
	return &countingTXT{next: next, live: map[string]int{}}
}

func (c *countingTXT) PresentTXT(fqdn, value string) error {
	if err := c.next.PresentTXT(fqdn, value); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.presented = append(c.presented, fqdn+" "+value)
	c.live[fqdn+" "+value]++
	return nil
}

func (c *countingTXT) CleanupTXT(fqdn, value string) error {
	if err := c.next.CleanupTXT(fqdn, value); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed++
	if c.live[fqdn+" "+value]--; c.live[fqdn+" "+value] <= 0 {
		delete(c.live, fqdn+" "+value)
	}
	return nil
}

// state returns the record names presented so far (sorted, once each),
// how many records were presented and removed, and how many are still
// published.
func (c *countingTXT) state() (names []string, presented, removed, live int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.presented {
		name, _, _ := strings.Cut(p, " ")
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, len(c.presented), c.removed, len(c.live)
}
