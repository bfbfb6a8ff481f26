package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/state"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrUnavailable is the kind of a change refused because the state
// backend cannot be reached (503).
var ErrUnavailable = state.ErrUnavailable

// StateView is the state backend's health as /v1/status shows it.
type StateView struct {
	Backend   string     `json:"backend"`
	Connected bool       `json:"connected"`
	Since     *time.Time `json:"since,omitempty"` // etcd: when connected last changed
	Error     string     `json:"error,omitempty"` // etcd: the last failure while disconnected
	Revision  int64      `json:"revision,omitempty"`
}

// EtcdClient returns the etcd client the node shares between its state,
// its fleet membership and its certificates; nil with the file backend.
func (n *Node) EtcdClient() *clientv3.Client { return n.etcd }

// newEtcdClient connects to the etcd of c without waiting: a client whose
// endpoints do not answer is still returned, and its requests fail until
// they do.
func newEtcdClient(c *config.Etcd) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:            c.Endpoints,
		DialTimeout:          c.DialTimeout.D(),
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: c.DialTimeout.D(),
		Username:             c.Username,
		Password:             c.Password,
		// The client's own log repeats every retry; the node logs each
		// change of reachability once.
		Logger: zap.NewNop(),
	}
	if t := c.TLS; t != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("reading state.etcd.tls.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("state.etcd.tls.ca_file %s holds no PEM certificate", t.CAFile)
			}
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("loading state.etcd.tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd: %w", err)
	}
	return cli, nil
}

// openEtcdState opens the fleet's state in etcd; with etcd away it starts
// from the copy saved at state.path, or fails when there is none.
func (n *Node) openEtcdState(cfg *config.Config) (state.Store, error) {
	cli, err := newEtcdClient(cfg.State.Etcd)
	if err != nil {
		return nil, err
	}
	st, err := state.OpenEtcd(cli, state.EtcdOptions{
		Prefix:  cfg.State.Etcd.Prefix,
		Timeout: cfg.State.Etcd.DialTimeout.D(),
		Cache:   cfg.State.Path,
		Now:     n.now,
		Logger:  n.opts.Logger,
	})
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	n.etcd, n.etcdStore = cli, st
	if err := n.seedEtcd(cfg, st); err != nil {
		// Unseeded, the node runs at the config's dials all the same.
		n.log.Warn("seeding the fleet state", "err", err)
	}
	return st, nil
}

// errSeeded ends a seeding that found the fleet's state already written.
var errSeeded = errors.New("fleet state already seeded")

// seedEtcd writes the config's initial dials to a prefix that holds no
// state yet; afterwards the stored state wins over the config.
func (n *Node) seedEtcd(cfg *config.Config, st *state.Etcd) error {
	if up, _, _ := st.Status(); !up || st.Revision() != 0 {
		return nil
	}
	_, err := st.Update(func(s *state.Snapshot) error {
		if s.Generation != 0 {
			return errSeeded
		}
		for i := range cfg.Services {
			svc := &cfg.Services[i]
			for r, d := range svc.Dials {
				s.SetDial(svc.Name, r, d)
			}
		}
		return nil
	}, state.AuditEntry{Token: "config", Action: "seed", Target: "fleet state", New: "config dials", Reason: "empty etcd prefix"})
	switch {
	case err == nil:
		n.log.Info("seeded the fleet state from the config", "prefix", cfg.State.Etcd.Prefix)
	case errors.Is(err, errSeeded):
	default:
		return fmt.Errorf("seeding the fleet state: %w", err)
	}
	return nil
}

// followState applies the changes other nodes make to the shared state.
func (n *Node) followState(ctx context.Context) {
	defer n.wg.Done()
	for s := range n.store.Watch(ctx) {
		n.mu.Lock()
		if s.Generation != n.st.Generation || len(s.Audit) != len(n.st.Audit) {
			n.st = s
			if err := n.rebuildLocked(); err != nil {
				n.log.Error("applying the fleet state", "generation", s.Generation, "err", err)
			}
		}
		n.mu.Unlock()
	}
}

// StateStatus reports the state backend's health.
func (n *Node) StateStatus() StateView {
	if n.etcdStore == nil {
		return StateView{Backend: "file", Connected: true}
	}
	up, since, lastErr := n.etcdStore.Status()
	sv := StateView{Backend: "etcd", Connected: up, Since: &since, Revision: n.etcdStore.Revision()}
	if !up {
		sv.Error = lastErr
	}
	return sv
}

// stateCollector reads the backend's reachability at scrape time.
type stateCollector struct{ n *Node }

var stateUpDesc = prometheus.NewDesc("meridian_state_backend_up",
	"Whether the state backend answers (1) or not (0).", []string{"backend"}, nil)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- stateUpDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	sv := c.n.StateStatus()
	v := 0.0
	if sv.Connected {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(stateUpDesc, prometheus.GaugeValue, v, sv.Backend)
}
