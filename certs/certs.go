package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
)

// Options are the Manager's collaborators and the names it manages.
type Options struct {
	Logger *slog.Logger // nil = slog.Default()

	// TXT publishes DNS-01 challenge records in meridian's own zones;
	// required when tls.acme uses the dns-01 challenge.
	TXT TXTPublisher

	// Names are the hostnames to obtain certificates for over ACME (the
	// hostnames of proxy-mode services). "*.example.com" asks for a
	// wildcard certificate (dns-01 only). Names a static certificate already
	// covers are left to it.
	Names []string

	// DNSResolver is host:port of meridian's own DNS listener. When set, a
	// DNS-01 challenge is only handed to the CA once that listener serves
	// its record. Optional.
	DNSResolver string

	// Storage keeps certificates, ACME accounts and locks; nil = a file
	// storage at tls.acme.storage. The nodes of a fleet pass one
	// EtcdStorage prefix, so a certificate is obtained once for all; then
	// tls.acme.storage keeps a local copy of what the node has seen, read
	// while etcd is unreachable, so a node restarted during an outage
	// still serves its certificates.
	Storage certmagic.Storage

	// TicketKeys, when set, gives every configuration TLSConfig returns
	// the fleet's shared session ticket keys.
	TicketKeys *TicketKeys

	// HTTPPort is the port of the http listener that carries
	// HTTPChallengeHandler (0 = 80). While that port is in use the HTTP-01
	// solver opens no listener of its own. HTTP-01 only.
	HTTPPort int

	// Registerer receives the certificate expiry gauges; nil registers
	// nothing.
	Registerer prometheus.Registerer

	ocspTiming *ocspTiming // nil = defaultOCSPTiming; tests shorten it
}

// Manager provides certificates to the https listeners: static ones first,
// then those it obtains and renews over ACME.
type Manager struct {
	log     *slog.Logger
	static  *staticCerts
	acme    *acmeSettings // nil without tls.acme
	tickets *TicketKeys   // nil: Go's own per-process ticket keys
	ocsp    *ocspStapler
	ocspWG  sync.WaitGroup // the OCSP refresh loops

	mu      sync.Mutex
	names   []string        // ACME names, in order
	managed map[string]bool // names handed to certmagic
	started bool
	stopped bool
	runCtx  context.Context
	cancel  context.CancelFunc
	cache   *certmagic.Cache

	// Set once by Start; read on every handshake and challenge request.
	magic  atomic.Pointer[certmagic.Config]
	issuer atomic.Pointer[certmagic.ACMEIssuer]
}

// New loads the static certificates of cfg (errors name the file) and
// prepares ACME when cfg.ACME is set. It starts nothing: Start does.
func New(cfg config.TLS, opts Options) (*Manager, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "certs")
	static, err := loadStatic(cfg.Certificates, log)
	if err != nil {
		return nil, err
	}
	m := &Manager{log: log, static: static, tickets: opts.TicketKeys, managed: make(map[string]bool)}
	m.ocsp = newOCSPStapler(nil, opts.ocspTiming, log)
	for _, sc := range static.list {
		m.ocsp.prepare(sc)
		static.hasOCSP = static.hasOCSP || sc.ocsp != nil
	}
	if static.hasOCSP {
		m.ocsp.fetchAll(static.list)
	}
	if cfg.ACME == nil {
		for _, n := range opts.Names {
			switch {
			case static.covers(normalizeName(n)):
			case len(static.deflt) > 0:
				log.Warn("no certificate names this hostname; the default certificate serves it", "hostname", n)
			default:
				log.Warn("no certificate for this hostname and no acme configured", "hostname", n)
			}
		}
		if err := m.register(opts.Registerer); err != nil {
			return nil, err
		}
		return m, nil
	}
	if m.acme, err = newACMESettings(*cfg.ACME, opts, log); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if m.names, err = m.acmeNames(opts.Names); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if err := m.register(opts.Registerer); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds the certificate expiry gauges to reg; nil registers
// nothing.
func (m *Manager) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(&expiryCollector{m: m}); err != nil {
		return fmt.Errorf("registering certificate metrics: %w", err)
	}
	if err := reg.Register(&ocspCollector{m: m}); err != nil {
		return fmt.Errorf("registering OCSP metrics: %w", err)
	}
	return nil
}

// TLSConfig returns a new TLS configuration for an https listener. Its
// certificate for a ClientHello is a static certificate naming the server
// name, else the ACME certificate for it, else the first static
// certificate. With shared ticket keys, the configuration follows them:
// the listener must use it, not a copy.
func (m *Manager) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: m.getCertificate,
	}
	applyProtocol(cfg)
	if m.tickets != nil {
		m.tickets.Attach(cfg)
	}
	return cfg
}

func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.static.lookup(hello); c != nil {
		return c, nil
	}
	var acmeErr error
	if magic := m.magic.Load(); magic != nil {
		c, err := magic.GetCertificate(hello)
		if err == nil && c != nil && len(c.Certificate) > 0 {
			return c, nil
		}
		acmeErr = err
	}
	if c := m.static.fallback(hello); c != nil {
		return c, nil
	}
	if acmeErr != nil {
		return nil, fmt.Errorf("no certificate for server name %q: %w", hello.ServerName, acmeErr)
	}
	return nil, fmt.Errorf("no certificate for server name %q", hello.ServerName)
}

// Start begins, in the background until ctx ends or Stop is called, to
// refresh the OCSP staples of static certificates and to manage the ACME
// names: their certificates are loaded from storage or obtained, then
// renewed. Without tls.acme a second call does nothing.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.stopped:
		if m.acme == nil {
			return nil
		}
		return errors.New("starting certificate management: manager is stopped")
	case m.started:
		if m.acme == nil {
			return nil
		}
		return errors.New("starting certificate management: already started")
	}
	m.started = true
	m.runCtx, m.cancel = context.WithCancel(ctx)
	for _, sc := range m.static.list {
		if sc.ocsp != nil {
			m.ocspWG.Go(func() { m.ocsp.run(m.runCtx, sc) })
		}
	}
	if m.acme == nil {
		return nil
	}
	m.startACME()
	return m.manageLocked(m.names)
}

// Manage adds names to manage over ACME (a reload that brought new
// proxy-mode hostnames). Names already managed or covered by a static
// certificate are skipped. Before Start the names wait for it; without
// tls.acme it does nothing.
func (m *Manager) Manage(names []string) error {
	if m.acme == nil {
		return nil
	}
	add, err := m.acmeNames(names)
	if err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range add {
		if !slices.Contains(m.names, n) {
			m.names = append(m.names, n)
		}
	}
	if !m.started || m.stopped {
		return nil
	}
	return m.manageLocked(add)
}

// manageLocked hands the names not yet managed to certmagic. m.mu is held.
func (m *Manager) manageLocked(names []string) error {
	var fresh []string
	for _, n := range names {
		if !m.managed[n] {
			fresh = append(fresh, n)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := m.magic.Load().ManageAsync(m.runCtx, fresh); err != nil {
		return fmt.Errorf("managing certificates: %w", err)
	}
	for _, n := range fresh {
		m.managed[n] = true
	}
	m.log.Info("managing certificates over acme", "names", fresh, "challenge", m.acme.challenge, "ca", m.acme.ca)
	return nil
}

// Stop ends certificate management: ACME operations in flight are
// cancelled and the renewal loop stops. Certificates already loaded keep
// being served. ACME goroutines in flight end shortly after, as they see
// their context cancelled. It is safe to call before Start and more than
// once.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.stopped = true
	if m.cancel != nil {
		m.cancel()
	}
	if m.cache != nil {
		m.cache.Stop()
	}
	m.ocspWG.Wait()
}

// HTTPChallengeHandler answers ACME HTTP-01 challenge requests for the
// certificates this Manager is obtaining and passes every other request to
// next. Mount it on the http listeners.
func (m *Manager) HTTPChallengeHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if iss := m.issuer.Load(); iss != nil && iss.HandleHTTPChallenge(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}
