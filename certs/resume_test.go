package certs

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/etcdtest"
)

// resumeManager is a Manager with an RSA and an ECDSA certificate for
// api.example.com and, when keys is set, shared ticket keys.
func resumeManager(t *testing.T, keys *TicketKeys) (*Manager, *testCA) {
	t.Helper()
	ca := newTestCA(t, "test ca")
	dir := t.TempDir()
	rsaCert, rsaKeyFile, _ := ca.issue(t, dir, "rsa", rsaKey(t), "", "api.example.com")
	ecCert, ecKeyFile, _ := ca.issue(t, dir, "ec", ecKey(t), "", "api.example.com")
	m, err := New(config.TLS{Certificates: []config.Certificate{
		{CertFile: ecCert, KeyFile: ecKeyFile},
		{CertFile: rsaCert, KeyFile: rsaKeyFile},
	}}, Options{Logger: testLogger(t), TicketKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return m, ca
}

// resumeCases are the client kinds resumption is checked for.
var resumeCases = []struct {
	name  string
	tweak func(*tls.Config)
}{
	{"tls1.3", func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }},
	{"tls1.2 ecdsa", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
	{"tls1.2 rsa", func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}},
}

func TestSessionResumptionByDefault(t *testing.T) {
	t.Parallel()
	m, ca := resumeManager(t, nil)
	cfg := m.TLSConfig()
	if cfg.SessionTicketsDisabled {
		t.Fatal("session tickets are disabled")
	}
	addr := serveTLSOK(t, cfg)
	for _, tc := range resumeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTicketClient(ca.pool)
			tc.tweak(c.cfg)
			if c.connect(t, addr) {
				t.Fatal("first connection resumed")
			}
			for i := range 2 {
				if !c.connect(t, addr) {
					t.Errorf("connection %d did not resume", i+2)
				}
			}
			// A client without the ticket makes a full handshake: the
			// check above can fail.
			if newTicketClient(ca.pool).connect(t, addr) {
				t.Error("a new client resumed")
			}
		})
	}
}

// TestSessionResumptionAcrossRotation checks, through the Manager's TLS
// configuration, that a ticket survives one rotation of the shared
// ticket keys and not two.
func TestSessionResumptionAcrossRotation(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	const rotation = 3 * time.Second
	keys := newTestTicketKeys(t, srv.Client(t), TicketKeysOptions{Rotation: rotation, Keep: 2})
	m, ca := resumeManager(t, keys)
	addr := serveTLSOK(t, m.TLSConfig())

	clients := make([]*ticketClient, len(resumeCases))
	stale := make([]*ticketClient, len(resumeCases))
	for i, tc := range resumeCases {
		clients[i], stale[i] = newTicketClient(ca.pool), newTicketClient(ca.pool)
		tc.tweak(clients[i].cfg)
		tc.tweak(stale[i].cfg)
		if clients[i].connect(t, addr) || stale[i].connect(t, addr) {
			t.Fatalf("%s: first connection resumed", tc.name)
		}
	}
	first := keys.Keys()[0]
	waitFor(t, "one rotation", func() bool { k := keys.Keys(); return len(k) == 2 && k[1] == first })
	second := keys.Keys()[0]
	for i, tc := range resumeCases {
		if !clients[i].connect(t, addr) {
			t.Errorf("%s: a ticket of the previous key did not resume after one rotation", tc.name)
		}
	}
	waitFor(t, "two rotations", func() bool { k := keys.Keys(); return len(k) == 2 && k[1] == second })
	for i, tc := range resumeCases {
		if stale[i].connect(t, addr) {
			t.Errorf("%s: a ticket of a key dropped two rotations ago resumed", tc.name)
		}
	}
}
