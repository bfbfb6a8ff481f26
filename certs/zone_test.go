package certs

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// zoneServer is a small DNS server for the solver's tests. It implements
// TXTPublisher and serves the TXT records presented to it, unless told to
// keep silent (a publisher whose records never reach the wire).
type zoneServer struct {
	mu        sync.Mutex
	txt       map[string][]string // name without final dot → values
	presented int
	removed   int
	silent    bool // accept records but do not serve them

	addr string
}

var _ TXTPublisher = (*zoneServer)(nil)

func newFakeTXT() *zoneServer {
	return &zoneServer{txt: make(map[string][]string)}
}

// startZoneServer serves z over UDP on 127.0.0.1 until the test ends.
func startZoneServer(t *testing.T) *zoneServer {
	t.Helper()
	z := newFakeTXT()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("starting test DNS server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("stopping test DNS server: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("test DNS server: %v", err)
		}
	})
	z.addr = pc.LocalAddr().String()
	return z
}

func checkFQDN(fqdn string) error {
	if fqdn == "" || strings.HasSuffix(fqdn, ".") || fqdn != strings.ToLower(fqdn) {
		return fmt.Errorf("name %q: want lower case without the final dot", fqdn)
	}
	return nil
}

func (z *zoneServer) PresentTXT(fqdn, value string) error {
	if err := checkFQDN(fqdn); err != nil {
		return err
	}
	if value == "" {
		return errors.New("empty value")
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.presented++
	z.txt[fqdn] = append(z.txt[fqdn], value)
	return nil
}

func (z *zoneServer) CleanupTXT(fqdn, value string) error {
	if err := checkFQDN(fqdn); err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	vals := z.txt[fqdn]
	i := slices.Index(vals, value)
	if i < 0 {
		return fmt.Errorf("no TXT %q at %q", value, fqdn)
	}
	z.removed++
	if vals = slices.Delete(vals, i, i+1); len(vals) == 0 {
		delete(z.txt, fqdn)
	} else {
		z.txt[fqdn] = vals
	}
	return nil
}

// counts returns how many records were presented, removed, and are served.
func (z *zoneServer) counts() (presented, removed, live int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, v := range z.txt {
		live += len(v)
	}
	return z.presented, z.removed, live
}

func (z *zoneServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
		if q.Qtype == dns.TypeTXT {
			z.mu.Lock()
			if !z.silent {
				for _, v := range z.txt[name] {
					m.Answer = append(m.Answer, &dns.TXT{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET},
						Txt: []string{v},
					})
				}
			}
			z.mu.Unlock()
		}
	}
	_ = w.WriteMsg(m)
}

// setSilent makes z accept records without serving them.
func (z *zoneServer) setSilent(silent bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.silent = silent
}
