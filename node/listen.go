package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/certs"
	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/version"
	"github.com/meridian-edge/meridian/proxy"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// listen binds every listener of cfg: DNS, http, https and admin.
func (n *Node) listen(ctx context.Context, cfg *config.Config) error {
	if len(cfg.Listen.DNS) > 0 {
		for _, a := range cfg.Listen.DNS {
			if err := refuseDefaultPort("dns", a); err != nil {
				return err
			}
		}
		if err := n.dns.ListenAndServe(ctx, cfg.Listen.DNS); err != nil {
			return fmt.Errorf("starting dns: %w", privilegeHint(err))
		}
		for i, a := range n.dns.Addrs() {
			n.setBound(fmt.Sprintf("dns/%d", i), a)
		}
	}
	var proxyHandler http.Handler = n.proxy
	if len(cfg.Listen.HTTPS) > 0 || cfg.TLS.ACME != nil || len(cfg.TLS.Certificates) > 0 {
		opts := certs.Options{
			Logger: n.opts.Logger,
			TXT:    n.dns,
			Names:  proxyHostnames(cfg),
			DNSResolver: func() string {
				if a := n.dns.Addrs(); len(a) > 0 {
					return a[0].String()
				}
				return ""
			}(),
			HTTPPort:   httpPort(cfg),
			Registerer: n.reg,
		}
		if n.etcd != nil {
			// A fleet shares certificates, ACME locks, DNS-01 records and
			// session ticket keys through etcd.
			f, err := certs.NewFleet(certs.FleetOptions{Client: n.etcd, Prefix: cfg.State.Etcd.Prefix,
				Node: cfg.Node.Name, DNS: n.dns, Logger: n.opts.Logger})
			if err != nil {
				return fmt.Errorf("preparing fleet certificates: %w", err)
			}
			if err := f.Start(ctx); err != nil {
				return fmt.Errorf("starting fleet certificates: %w", err)
			}
			n.certFleet = f
			opts = f.Apply(opts)
		}
		m, err := certs.New(cfg.TLS, opts)
		if err != nil {
			return fmt.Errorf("preparing tls: %w", err)
		}
		n.certs = m
		proxyHandler = m.HTTPChallengeHandler(n.proxy)
	}
	for i, addr := range cfg.Listen.HTTP {
		if err := n.serve(fmt.Sprintf("http/%d", i), addr, n.proxy.Server(addr), proxyHandler, nil); err != nil {
			return err
		}
	}
	for i, addr := range cfg.Listen.HTTPS {
		srv := n.proxy.Server(addr)
		tc := n.certs.TLSConfig()
		if err := n.serve(fmt.Sprintf("https/%d", i), addr, srv, n.proxy, tc); err != nil {
			return err
		}
	}
	if n.certs != nil {
		if err := n.certs.Start(ctx); err != nil {
			return fmt.Errorf("starting certificate management: %w", err)
		}
	}
	if cfg.Listen.Admin != "" {
		srv := &http.Server{
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
		}
		if err := n.serve("admin", cfg.Listen.Admin, srv, n.adminHandler(), nil); err != nil {
			return err
		}
	}
	return nil
}

// defaultPorts are the ports of the product's default and demo addresses
// (SPEC section 2: dns 5353, http 8080, admin 9053). A test binary that
// binds one of them collides with a node running on the same machine, so
// under testing it is refused: test configs bind 127.0.0.1:0.
var defaultPorts = []string{"5353", "8080", "9053"}

// refuseDefaultPort fails, in a test binary only, when addr uses one of
// defaultPorts.
func refuseDefaultPort(kind, addr string) error {
	if !testing.Testing() {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil // net.Listen reports it
	}
	for _, p := range defaultPorts {
		if port == p {
			return fmt.Errorf("listening %s on %s: tests must not bind a default port of the product; use 127.0.0.1:0", kind, addr)
		}
	}
	return nil
}

// privilegeHint adds to a bind refused for want of privilege (a port below
// 1024 bound by an unprivileged user) what the operator can do about it.
func privilegeHint(err error) error {
	if !errors.Is(err, syscall.EACCES) {
		return err
	}
	return fmt.Errorf("%w (ports below 1024 need the CAP_NET_BIND_SERVICE capability: "+
		"run under the systemd unit deploy/systemd/meridian.service, which grants it, "+
		"or give the binary it with 'setcap cap_net_bind_service=+ep /path/to/meridian')", err)
}

// serve binds addr and serves h on srv in the background.
func (n *Node) serve(kind, addr string, srv *http.Server, h http.Handler, tc *tls.Config) error {
	if err := refuseDefaultPort(strings.Split(kind, "/")[0], addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening %s on %s: %w", strings.Split(kind, "/")[0], addr, privilegeHint(err))
	}
	srv.Handler = h
	if tc != nil {
		srv.TLSConfig = tc
		ln = tls.NewListener(ln, tc)
	}
	n.setBound(kind, ln.Addr())
	n.log.Info(strings.Split(kind, "/")[0]+" listening", "addr", ln.Addr().String(), "tls", tc != nil)
	serve := srv.Serve
	if kind != "admin" {
		// http and https listeners: the proxy's fast path, which hands
		// what it does not serve itself to srv; the proxy's Shutdown
		// stops both.
		serve = func(ln net.Listener) error { return n.proxy.Serve(ln, srv) }
	} else {
		n.servers = append(n.servers, srv)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("listener stopped", "kind", kind, "addr", addr, "err", err)
		}
	}()
	return nil
}

// connLimits are the proxy's connection limits from the listen section.
func connLimits(c config.Connections) proxy.Limits {
	return proxy.Limits{
		Max:             c.Max,
		MaxPerSource:    c.MaxPerSource,
		IdleTimeout:     c.IdleTimeout.D(),
		BusyIdleTimeout: c.BusyIdleTimeout.D(),
		BusyAt:          c.BusyAt.Fraction(),
	}
}

func (n *Node) setBound(kind string, a net.Addr) {
	n.mu.Lock()
	n.bound[kind] = a
	n.mu.Unlock()
}

// Addr returns the bound address of a listener: "dns/0", "http/0",
// "https/0", "admin". Tests bind :0 and ask here.
func (n *Node) Addr(kind string) net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bound[kind]
}

// adminHandler serves /metrics, /health/live and /health/ready, and hands
// everything else to the admin API when one is configured.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !n.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			switch {
			case n.Draining():
				_, _ = w.Write([]byte("draining\n"))
			case n.drained.Load():
				_, _ = w.Write([]byte("drained\n"))
			case !n.fitToAnnounce():
				_, _ = w.Write([]byte("starting\n"))
			default:
				_, _ = w.Write([]byte("bgp prefixes withdrawn\n"))
			}
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if n.opts.Admin != nil {
		mux.Handle("/", n.opts.Admin(n))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(AdminHeader, version.Version)
		mux.ServeHTTP(w, r)
	})
}

// AdminHeader is set on every answer of the admin listener, with the
// node's version: a client such as ctl tells by it that it reached a
// meridian admin API and not something else on that address.
const AdminHeader = "X-Meridian-Admin"

func proxyHostnames(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Services {
		if s.Mode == "proxy" {
			out = append(out, s.Hostnames...)
		}
	}
	return out
}

// httpPort is the port of the first http listener, where HTTP-01
// challenges are answered.
func httpPort(cfg *config.Config) int {
	if len(cfg.Listen.HTTP) == 0 {
		return 0
	}
	_, p, err := net.SplitHostPort(cfg.Listen.HTTP[0])
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(p)
	return port
}
