package certs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-edge/meridian/internal/etcdtest"
)

// txtNode is one node's DNS server and its etcd challenge records.
type txtNode struct {
	txt  *EtcdTXT
	addr string // DNS listener
}

func startTXTNode(t *testing.T, cli *clientv3.Client, owner string, ttl time.Duration) txtNode {
	t.Helper()
	dnsSrv, addr := startMeridianDNS(t)
	e, err := NewEtcdTXT(cli, "/fleet/acme-dns", dnsSrv, EtcdTXTOptions{Owner: owner, TTL: ttl, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewEtcdTXT: %v", err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(e.Stop)
	return txtNode{txt: e, addr: addr}
}

// waitTXT polls the DNS server at addr until the TXT values at name are
// want (in any order).
func waitTXT(t *testing.T, addr, name string, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := queryTXT(t, addr, name)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("TXT %s at %s = %q, want %q", name, addr, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const challengeName = "_acme-challenge.api.example.com"

func TestEtcdTXTServedByEveryNode(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	a := startTXTNode(t, srv.Client(t), "a", 0)
	b := startTXTNode(t, srv.Client(t), "b", 0)

	if err := a.txt.PresentTXT(challengeName, "from-a"); err != nil {
		t.Fatalf("PresentTXT: %v", err)
	}
	// Served by the publishing node as soon as PresentTXT returns.
	if got := queryTXT(t, a.addr, challengeName); !slices.Equal(got, []string{"from-a"}) {
		t.Errorf("publishing node serves %q, want from-a at once", got)
	}
	waitTXT(t, b.addr, challengeName, "from-a")

	// Two values at one name (a name and its wildcard), from two nodes.
	if err := b.txt.PresentTXT("_ACME-challenge.api.example.com", "from-b"); err != nil {
		t.Fatal(err)
	}
	waitTXT(t, a.addr, challengeName, "from-a", "from-b")
	waitTXT(t, b.addr, challengeName, "from-a", "from-b")

	// A node that starts later serves what is already there.
	c := startTXTNode(t, srv.Client(t), "c", 0)
	waitTXT(t, c.addr, challengeName, "from-a", "from-b")

	if err := a.txt.CleanupTXT(challengeName, "from-a"); err != nil {
		t.Fatalf("CleanupTXT: %v", err)
	}
	if got := queryTXT(t, a.addr, challengeName); !slices.Equal(got, []string{"from-b"}) {
		t.Errorf("after cleanup the publishing node serves %q, want from-b only at once", got)
	}
	for _, n := range []txtNode{b, c} {
		waitTXT(t, n.addr, challengeName, "from-b")
	}
	// Cleaning up what is not there is no error.
	if err := a.txt.CleanupTXT(challengeName, "from-a"); err != nil {
		t.Errorf("second CleanupTXT: %v", err)
	}

	// A node that stops withdraws its records everywhere.
	b.txt.Stop()
	for _, n := range []txtNode{a, c} {
		waitTXT(t, n.addr, challengeName)
	}
	if got := queryTXT(t, b.addr, challengeName); len(got) != 0 {
		t.Errorf("stopped node still serves %q", got)
	}
}

// TestEtcdTXTStaleListing: a listing made before this node's own put or
// delete reaches the mirror after it (the mirror lists while a record is
// presented); it must not withdraw the record just presented, nor serve
// again the one just cleaned up.
func TestEtcdTXTStaleListing(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	dnsSrv, addr := startMeridianDNS(t)
	e, err := NewEtcdTXT(cli, "/fleet/acme-dns", dnsSrv, EtcdTXTOptions{Owner: "a", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	revision := func() int64 {
		t.Helper()
		resp, err := cli.Get(t.Context(), "/fleet/acme-dns/")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}

	before := revision()
	if err := e.PresentTXT(challengeName, "v"); err != nil {
		t.Fatal(err)
	}
	e.applyListing(map[string]txtRR{}, before)
	if got := queryTXT(t, addr, challengeName); !slices.Equal(got, []string{"v"}) {
		t.Errorf("after a listing older than the put: serving %q, want v", got)
	}

	key := e.recordKey(challengeName, "v")
	name, ok := e.parseRecordKey(key)
	if !ok {
		t.Fatalf("key %q does not parse", key)
	}
	before = revision()
	if err := e.CleanupTXT(challengeName, "v"); err != nil {
		t.Fatal(err)
	}
	e.applyListing(map[string]txtRR{key: {name, "v"}}, before)
	if got := queryTXT(t, addr, challengeName); len(got) != 0 {
		t.Errorf("after a listing older than the cleanup: serving %q, want nothing", got)
	}

	// A listing at or past this node's writes is applied as it is.
	e.applyListing(map[string]txtRR{key: {name, "v"}}, revision())
	if got := queryTXT(t, addr, challengeName); !slices.Equal(got, []string{"v"}) {
		t.Errorf("after a current listing that holds the record: serving %q, want v", got)
	}
}

func TestEtcdTXTRefusedOutsideZones(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	a := startTXTNode(t, cli, "a", 0)
	err := a.txt.PresentTXT("_acme-challenge.api.example.org", "v")
	if err == nil || !strings.Contains(err.Error(), "not in a configured zone") {
		t.Fatalf("PresentTXT outside the zones: %v, want the DNS server's refusal", err)
	}
	resp, err := cli.Get(testCtx(t), "/fleet/acme-dns/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d records in etcd after a refused one, want 0", resp.Count)
	}
}

func TestEtcdTXTDeadNodeWithdrawn(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	deadCli := srv.Client(t)
	dead := startTXTNode(t, deadCli, "dead", 2*time.Second)
	b := startTXTNode(t, srv.Client(t), "b", 0)
	if err := dead.txt.PresentTXT(challengeName, "orphan"); err != nil {
		t.Fatal(err)
	}
	waitTXT(t, b.addr, challengeName, "orphan")
	// The node's connection to etcd dies without a word: its lease is no
	// longer kept alive and its record goes when the lease expires.
	if err := deadCli.Close(); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	waitTXT(t, b.addr, challengeName)
	t.Logf("record of the dead node withdrawn %s after its client closed (ttl 2s)", time.Since(gone).Round(10*time.Millisecond))
}

func TestEtcdTXTSurvivesEtcdRestart(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	a := startTXTNode(t, srv.Client(t), "a", 0)
	b := startTXTNode(t, srv.Client(t), "b", 0)
	if err := a.txt.PresentTXT(challengeName, "before"); err != nil {
		t.Fatal(err)
	}
	waitTXT(t, b.addr, challengeName, "before")
	srv.Stop()
	// etcd down: a record cannot be published, and the error says so;
	// what is served stays.
	err := a.txt.PresentTXT(challengeName, "during")
	if err == nil || !strings.Contains(err.Error(), "publishing txt record at \""+challengeName+"\" in etcd") {
		t.Errorf("PresentTXT with etcd down: %v", err)
	}
	waitTXT(t, a.addr, challengeName, "before")
	waitTXT(t, b.addr, challengeName, "before")
	srv.Restart()
	if err := a.txt.PresentTXT(challengeName, "after"); err != nil {
		t.Fatalf("PresentTXT after etcd restarted: %v", err)
	}
	waitTXT(t, b.addr, challengeName, "before", "after")
}
