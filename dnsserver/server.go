package dnsserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/geo"
	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/policy"
)

// Defaults for Options.
const (
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultMaxTCPConns    = 1024
)

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// FailOpen counts fail-open decisions by service
	// (meridian_decisions_fail_open_total); nil counts nothing.
	FailOpen *prometheus.CounterVec
	// Now is the clock (serials of zones without files); nil = time.Now.
	Now func() time.Time
	// TCPIdleTimeout closes TCP connections idle that long (default 10s).
	TCPIdleTimeout time.Duration
	// MaxTCPConns bounds concurrent TCP connections (default 1024); more
	// are closed at once.
	MaxTCPConns int
	// UDPSockets is the number of SO_REUSEPORT sockets per UDP address
	// where the platform has it. A busy socket keeps a P of the runtime
	// while it waits between queries, so the default, GOMAXPROCS-1 (at
	// least 1), leaves one for the rest of the process.
	UDPSockets int
	// CookieRotation is how often the cookie secret is replaced while it
	// is not shared (SetCookieSecrets); default DefaultCookieRotation, at
	// least an hour.
	CookieRotation time.Duration
}

// Input is everything an answer table is built from.
type Input struct {
	Config *config.Config // zones, services, regions, node
	Geo    *geo.DB        // client locations; nil: no location
	Policy *policy.Snapshot
	Health *health.Snapshot // endpoint health; nil: every endpoint up
	// Degraded[i] makes service i answer with ttl_degraded.
	Degraded []bool
}

// Server is an authoritative DNS server. Its methods are safe for
// concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	m    *metrics

	table atomic.Pointer[table]

	mu      sync.Mutex // serializes Update
	serials map[string]serialState

	dyn     atomic.Pointer[dynSet]
	dynMu   sync.Mutex
	dynRecs map[string]*dynRecord

	panicLogged atomic.Bool

	jar *cookieJar
	rrl atomic.Pointer[limiter] // nil: no rate limiting

	lis listeners
}

// table is one generation of answer data. It is immutable once published.
type table struct {
	st   *static
	svcs []svcTable
	snap *policy.Snapshot
	geo  *geo.DB
	// cookies answers COOKIE options; nil while dns.cookies is off.
	cookies *cookieJar
}

// New returns a server with no zones; Update gives it some.
func New(opts Options) *Server {
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, dynRecs: map[string]*dynRecord{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "dns")
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.TCPIdleTimeout <= 0 {
		s.opts.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if s.opts.MaxTCPConns <= 0 {
		s.opts.MaxTCPConns = DefaultMaxTCPConns
	}
	if s.opts.CookieRotation <= 0 {
		s.opts.CookieRotation = DefaultCookieRotation
	}
	s.opts.CookieRotation = max(s.opts.CookieRotation, time.Hour)
	s.jar = newCookieJar(s.now)
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		// A clashing collector of another shape: count without exporting.
		s.log.Warn("dns metrics not registered", "err", err)
		m, _ = newMetrics(nil)
	}
	s.m = m
	s.lis.conns = map[net.Conn]struct{}{}
	return s
}

// Update builds answer tables from in and swaps them in. On error the
// previous tables keep serving.
func (s *Server) Update(in Input) error {
	if in.Config == nil {
		return fmt.Errorf("updating dns tables: no config")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	st := (*static)(nil)
	if old != nil && old.st.cfg == in.Config {
		st = old.st
	} else {
		var err error
		st, err = buildStatic(in.Config, s.serials, s.now(), s.m)
		if err != nil {
			return fmt.Errorf("updating dns tables: %w", err)
		}
	}
	svcs, err := buildServices(&in, s.m, s.opts.FailOpen)
	if err != nil {
		return fmt.Errorf("updating dns tables: %w", err)
	}
	var jar *cookieJar
	if in.Config.DNS.Cookies {
		jar = s.jar
	}
	s.setRRL(in.Config.DNS.RRL)
	s.table.Store(&table{st: st, svcs: svcs, snap: in.Policy, geo: in.Geo, cookies: jar})
	s.serials = st.serials
	return nil
}

// setRRL switches response rate limiting to c (nil: off), keeping the
// accounts when c does not change it.
func (s *Server) setRRL(c *config.RRL) {
	old := s.rrl.Load()
	switch {
	case c == nil:
		s.rrl.Store(nil)
	case old == nil || !old.same(c):
		s.rrl.Store(newLimiter(c, s.m, s.log, nil))
	}
}

// SetCookieSecrets makes current the secret server cookies are made with
// and accepts cookies made with current or previous (nil: none), so that
// every node of a fleet that shares them accepts another's cookies. Once
// called, the node stops rotating a secret of its own. Each secret is 16
// bytes.
func (s *Server) SetCookieSecrets(current, previous []byte) error {
	if err := s.jar.set(current, previous); err != nil {
		return fmt.Errorf("setting dns cookie secrets: %w", err)
	}
	return nil
}

// answer is the one adapter every transport calls: it drops what must not
// be answered, tries the fast path, falls back to the general one, turns
// errors and panics into SERVFAIL, rate-limits UDP answers, and returns
// the answer in out's storage (nil: send nothing).
func (s *Server) answer(q []byte, src netip.Addr, tcp bool, out []byte) (resp []byte) {
	if len(q) < headerLen || q[2]&0x80 != 0 {
		return nil // too short to answer, or not a query
	}
	t := s.table.Load()
	if t == nil {
		return headerOnly(out, q, rcodeServFail) // nothing loaded yet
	}
	defer func() {
		if r := recover(); r != nil {
			s.m.panics.Inc()
			if s.panicLogged.CompareAndSwap(false, true) {
				s.log.Error("panic answering a query (logged once)", "panic", r)
			}
			t.st.none.inc(0, rcodeServFail)
			resp = headerOnly(out, q, rcodeServFail)
		}
	}()
	dyn := s.dyn.Load()
	var e ednsOpt
	r, ok := t.answerFast(q, src, tcp, dyn, &e, out)
	if !ok {
		e = ednsOpt{}
		b, err := t.answerSlow(q, src, tcp, dyn, &e)
		if err != nil {
			s.log.Debug("answering a query", "err", err)
			t.st.none.inc(0, rcodeServFail)
			return headerOnly(out, q, rcodeServFail)
		}
		r = append(out[:0], b...)
	}
	if !tcp && !e.cookie.valid {
		if l := s.rrl.Load(); l != nil {
			return l.apply(r, src, &e)
		}
	}
	return r
}

// headerOnly answers q with its header alone and rcode.
func headerOnly(out, q []byte, rcode uint8) []byte {
	out = append(out[:0], q[:headerLen]...)
	out[2] = 0x80 | q[2]&0x79 // QR, opcode and RD kept
	out[3] = rcode
	clear(out[4:headerLen])
	return out
}

// maintainEvery is how often maintain wakes.
const maintainEvery = time.Second

// maintain rotates the cookie secret and ends the rate limiting of quiet
// clients until done is closed.
func (s *Server) maintain(done <-chan struct{}) {
	tk := time.NewTicker(maintainEvery)
	defer tk.Stop()
	for {
		select {
		case <-done:
			return
		case <-tk.C:
		}
		if s.jar.rotate(s.opts.CookieRotation) {
			s.log.Info("dns cookie secret rotated", "every", s.opts.CookieRotation.String())
		}
		if l := s.rrl.Load(); l != nil {
			l.sweep()
		}
	}
}
