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

	lis listeners
}

// table is one generation of answer data. It is immutable once published.
type table struct {
	st   *static
	svcs []svcTable
	snap *policy.Snapshot
	geo  *geo.DB
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
	s.table.Store(&table{st: st, svcs: svcs, snap: in.Policy, geo: in.Geo})
	s.serials = st.serials
	return nil
}

// answer is the one adapter every transport calls: it drops what must not
// be answered, tries the fast path, falls back to the general one, turns
// errors and panics into SERVFAIL, and returns the answer in out's
// storage (nil: send nothing).
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
	if r, ok := t.answerFast(q, src, tcp, dyn, out); ok {
		return r
	}
	b, err := t.answerSlow(q, src, tcp, dyn)
	if err != nil {
		s.log.Debug("answering a query", "err", err)
		t.st.none.inc(0, rcodeServFail)
		return headerOnly(out, q, rcodeServFail)
	}
	return append(out[:0], b...)
}

// headerOnly answers q with its header alone and rcode.
func headerOnly(out, q []byte, rcode uint8) []byte {
	out = append(out[:0], q[:headerLen]...)
	out[2] = 0x80 | q[2]&0x79 // QR, opcode and RD kept
	out[3] = rcode
	clear(out[4:headerLen])
	return out
}
