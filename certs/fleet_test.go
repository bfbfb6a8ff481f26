package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/etcdtest"
)

// fleetNode is one node of a test fleet: its DNS server, its share of
// the fleet's etcd state and its certificate manager.
type fleetNode struct {
	dnsAddr string
	txt     *countingTXT
	manager *Manager
	https   string
}

const fleetPrefix = "/fleet/"

// fleetSpec is what differs between the nodes of a test fleet.
type fleetSpec struct {
	name      string
	local     TXTPublisher // the node's DNS server
	dnsAddr   string
	challenge string
	names     []string
	httpPort  int    // http-01: the node's http listener
	localDir  string // tls.acme.storage, the local copy; "" = a new one
}

// newFleetNode prepares a node on its own etcd client, serving TLS with
// its manager's configuration; the test starts the manager.
func newFleetNode(t *testing.T, srv *etcdtest.Server, peb *pebble, spec fleetSpec) *fleetNode {
	t.Helper()
	name, local, dnsAddr := spec.name, spec.local, spec.dnsAddr
	if spec.localDir == "" {
		spec.localDir = t.TempDir()
	}
	f, err := NewFleet(FleetOptions{Client: srv.Client(t), Prefix: fleetPrefix, Node: name, DNS: local, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewFleet: %v", err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatalf("fleet Start: %v", err)
	}
	t.Cleanup(f.Stop)
	opts := f.Apply(Options{
		Logger:      testLogger(t).With("node", name),
		Names:       spec.names,
		DNSResolver: dnsAddr,
		HTTPPort:    spec.httpPort,
	})
	n := &fleetNode{dnsAddr: dnsAddr, txt: newCountingTXT(opts.TXT)}
	opts.TXT = n.txt
	n.manager, err = New(config.TLS{ACME: &config.ACME{
		Email:     "ops@example.com",
		CA:        peb.directory,
		CARoot:    peb.caRoot,
		Challenge: spec.challenge,
		Storage:   spec.localDir,
	}}, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(n.manager.Stop)
	n.https = serveTLSConfig(t, n.manager.TLSConfig())
	return n
}

// serveTLSConfig serves TLS with cfg itself (not a copy, so shared ticket
// keys follow their rotation) and writes "ok" on each connection.
func serveTLSConfig(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = c.Write([]byte("ok"))
				buf := make([]byte, 1)
				_, _ = c.Read(buf) // until the client closes
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// waitForKey polls etcd until a key exists under prefix.
func waitForKey(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	deadline := time.Now().Add(issuanceTimeout)
	for {
		resp, err := cli.Get(testCtx(t), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no key under %s within %s (%v)", prefix, issuanceTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFleetObtainsOnce runs two nodes sharing etcd: both manage the same
// name, one ACME order is made, and both serve its certificate. The CA
// validates the DNS-01 record against the node that did not publish it.
func TestFleetObtainsOnce(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	dnsA, addrA := startMeridianDNS(t)
	dnsB, addrB := startMeridianDNS(t)
	peb := startPebble(t, addrB, freePort(t)) // the CA asks node b only
	names := []string{"api.example.com"}
	localDirA := t.TempDir()
	a := newFleetNode(t, srv, peb, fleetSpec{name: "a", local: dnsA, dnsAddr: addrA, challenge: "dns-01", names: names, localDir: localDirA})
	b := newFleetNode(t, srv, peb, fleetSpec{name: "b", local: dnsB, dnsAddr: addrB, challenge: "dns-01", names: names})

	// Node a starts first and takes the issuance lock; node b starts
	// while a holds it, so a is the one that orders.
	ctx := context.Background()
	if err := a.manager.Start(ctx); err != nil {
		t.Fatalf("a: Start: %v", err)
	}
	cli := srv.Client(t)
	waitForKey(t, cli, fleetPrefix+"certs/locks/")
	if err := b.manager.Start(ctx); err != nil {
		t.Fatalf("b: Start: %v", err)
	}

	stA := waitForCert(t, a.https, "api.example.com", peb.issuing)
	stB := waitForCert(t, b.https, "api.example.com", peb.issuing)
	checkIssued(t, stA, "api.example.com")
	if !bytes.Equal(stA.PeerCertificates[0].Raw, stB.PeerCertificates[0].Raw) {
		t.Errorf("nodes serve different certificates (serials %s and %s), want the one obtained once",
			stA.PeerCertificates[0].SerialNumber, stB.PeerCertificates[0].SerialNumber)
	}

	namesA, presentedA, removedA, _ := a.txt.state()
	_, presentedB, _, _ := b.txt.state()
	if !slices.Equal(namesA, []string{"_acme-challenge.api.example.com"}) || presentedA != 1 || removedA != 1 {
		t.Errorf("node a presented %d dns-01 records at %q and removed %d, want one", presentedA, namesA, removedA)
	}
	if presentedB != 0 {
		t.Errorf("node b presented %d dns-01 records, want none: one order per fleet", presentedB)
	}
	// Nothing lingers: no record in etcd or in either DNS server, no lock.
	for _, p := range []string{fleetPrefix + "acme-dns/", fleetPrefix + "certs/locks/"} {
		waitForNoKey(t, cli, p)
	}
	for _, addr := range []string{addrA, addrB} {
		if got := queryTXT(t, addr, "_acme-challenge.api.example.com"); len(got) != 0 {
			t.Errorf("%s still serves TXT %q", addr, got)
		}
	}

	// A client resumes its session on the other node.
	c := newTicketClient(peb.issuing)
	if c.connect(t, a.https) {
		t.Fatal("first connection resumed")
	}
	if !c.connect(t, b.https) {
		t.Error("the session from node a did not resume on node b")
	}

	// etcd goes down and node a restarts: it serves the certificate from
	// its local copy.
	a.manager.Stop()
	srv.Stop()
	a2 := newFleetNode(t, srv, peb, fleetSpec{name: "a", local: dnsA, dnsAddr: addrA, challenge: "dns-01", names: names, localDir: localDirA})
	if err := a2.manager.Start(ctx); err != nil {
		t.Fatalf("a restarted: Start: %v", err)
	}
	st := waitForCert(t, a2.https, "api.example.com", peb.issuing)
	if !bytes.Equal(st.PeerCertificates[0].Raw, stA.PeerCertificates[0].Raw) {
		t.Error("node a restarted with etcd down serves another certificate, want the fleet's from its local copy")
	}
	if _, presented, _, _ := a2.txt.state(); presented != 0 {
		t.Errorf("node a restarted with etcd down presented %d dns-01 records, want none", presented)
	}
}

// waitForNoKey polls etcd until nothing is left under prefix.
func waitForNoKey(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := cli.Get(testCtx(t), prefix, clientv3.WithPrefix())
		if err == nil && resp.Count == 0 {
			return
		}
		if time.Now().After(deadline) {
			var keys []string
			if resp != nil {
				for _, kv := range resp.Kvs {
					keys = append(keys, string(kv.Key))
				}
			}
			t.Fatalf("keys left under %s: %q (%v)", prefix, keys, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewFleetErrors(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	dnsSrv, _ := startMeridianDNS(t)
	tests := []struct {
		name string
		o    FleetOptions
		want string
	}{
		{"no client", FleetOptions{Prefix: "/m/", DNS: dnsSrv}, "fleet certificates: no etcd client"},
		{"no prefix", FleetOptions{Client: cli, DNS: dnsSrv}, `fleet certificates: prefix "": want a non-empty key prefix`},
		{"no dns", FleetOptions{Client: cli, Prefix: "/m/"}, "etcd challenge records: no local DNS server to serve them"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFleet(tc.o)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	// The keys land under the prefix, as the README documents.
	f, err := NewFleet(FleetOptions{Client: cli, Prefix: "/m", Node: "n1", DNS: dnsSrv})
	if err != nil {
		t.Fatal(err)
	}
	if f.Storage.prefix != "/m/certs/" || f.Records.prefix != "/m/acme-dns/" || f.Tickets.key != "/m/tls/session-ticket-keys" {
		t.Errorf("keys at %q, %q, %q", f.Storage.prefix, f.Records.prefix, f.Tickets.key)
	}
	f.Stop() // before Start
}

// TestFleetHTTP01 shows the storage carrying HTTP-01 across the fleet:
// node a orders, and the CA fetches the challenge from node b, which
// finds it in etcd (certmagic's distributed solver).
func TestFleetHTTP01(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	dnsA, addrA := startMeridianDNS(t) // www.example.com A 127.0.0.1
	dnsB, addrB := startMeridianDNS(t)
	lnA, portA := listenHTTP(t)
	lnB, portB := listenHTTP(t)
	peb := startPebble(t, addrA, portB) // the CA fetches from node b only
	names := []string{"www.example.com"}
	a := newFleetNode(t, srv, peb, fleetSpec{name: "a", local: dnsA, dnsAddr: addrA, challenge: "http-01", names: names, httpPort: portA})
	b := newFleetNode(t, srv, peb, fleetSpec{name: "b", local: dnsB, dnsAddr: addrB, challenge: "http-01", httpPort: portB})
	servedA := serveChallenges(t, lnA, a.manager)
	servedB := serveChallenges(t, lnB, b.manager)

	// Node b runs (its challenge handler ready) but manages nothing until
	// node a holds the issuance lock.
	ctx := context.Background()
	if err := b.manager.Start(ctx); err != nil {
		t.Fatalf("b: Start: %v", err)
	}
	if err := a.manager.Start(ctx); err != nil {
		t.Fatalf("a: Start: %v", err)
	}
	waitForKey(t, srv.Client(t), fleetPrefix+"certs/locks/")
	if err := b.manager.Manage(names); err != nil {
		t.Fatalf("b: Manage: %v", err)
	}
	stA := waitForCert(t, a.https, "www.example.com", peb.issuing)
	stB := waitForCert(t, b.https, "www.example.com", peb.issuing)
	checkIssued(t, stA, "www.example.com")
	if !bytes.Equal(stA.PeerCertificates[0].Raw, stB.PeerCertificates[0].Raw) {
		t.Error("nodes serve different certificates, want the one obtained once")
	}
	if servedB.Load() == 0 || servedA.Load() != 0 {
		t.Errorf("challenge requests answered: node a %d, node b %d; want all at node b", servedA.Load(), servedB.Load())
	}
}

// listenHTTP binds a loopback port for a node's http listener.
func listenHTTP(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// serveChallenges serves m's HTTP-01 challenge handler on ln until the
// test ends, counting the challenge requests it answers.
func serveChallenges(t *testing.T, ln net.Listener, m *Manager) *atomic.Int64 {
	t.Helper()
	var answered atomic.Int64
	h := m.HTTPChallengeHandler(http.NotFoundHandler())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w}
			h.ServeHTTP(rec, r)
			if rec.status == http.StatusOK && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				answered.Add(1)
			}
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return &answered
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
