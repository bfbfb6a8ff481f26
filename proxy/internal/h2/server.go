package h2

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of a Server's zero fields.
const (
	DefaultMaxConcurrentStreams = 250
	DefaultMaxHeaderListSize    = 64 << 10
	DefaultPrefaceTimeout       = 10 * time.Second
	DefaultIdleTimeout          = 120 * time.Second
	// DefaultStreamWindow is the receive window of a stream: how much of
	// a request body the client may send ahead of the handler's reads.
	DefaultStreamWindow = 256 << 10
	// DefaultConnWindow is the receive window of a connection.
	DefaultConnWindow = 1 << 20
	// DefaultResetBudget is how many streams a client may reset (or have
	// refused) beyond the ones it let complete before the connection is
	// closed with ENHANCE_YOUR_CALM (CVE-2023-44487).
	DefaultResetBudget = 200
)

// Limits of the connection engine that are not configurable.
const (
	// maxQueuedControl bounds the control frames (SETTINGS and PING
	// acknowledgements, RST_STREAM, WINDOW_UPDATE) queued while the
	// client does not read: beyond it the connection is closed.
	maxQueuedControl = 10000
	// maxWriteBuffer is the size of the write buffer beyond which a
	// stream's DATA waits for the socket.
	maxWriteBuffer = 256 << 10
	// maxGlitches bounds frames that do nothing useful (empty DATA
	// without END_STREAM, CONTINUATION fragments of nothing, PRIORITY on
	// closed streams, WINDOW_UPDATE on streams being reset).
	maxGlitches = 1000
	// lingerTimeout is how long a closing connection reads what the
	// client still sends, so that its close does not reset what was
	// written last.
	lingerTimeout = time.Second
)

// Handler serves one stream. It runs on a goroutine of its own; the
// stream is the engine's again once Handler returns, and is ended then if
// Handler did not end it.
type Handler func(*Stream)

// Server holds the settings of HTTP/2 connections and the set of those
// it serves, for Shutdown and Close. Fields are read when a connection
// starts; set them before the first.
type Server struct {
	// Handler serves every stream.
	Handler Handler
	// MaxConcurrentStreams is the SETTINGS_MAX_CONCURRENT_STREAMS sent
	// to clients; streams beyond it are refused.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize bounds a request's (and trailers') header list,
	// counted as RFC 9113 does; larger requests get 431.
	MaxHeaderListSize uint32
	// PrefaceTimeout bounds the wait for the client's preface and first
	// SETTINGS frame.
	PrefaceTimeout time.Duration
	// IdleTimeout closes a connection with no open stream for that long.
	IdleTimeout time.Duration
	// IdleNow, when set, gives the idle timeout of a connection that
	// goes idle now, in place of IdleTimeout (which it should not
	// exceed): shorter while the node holds many connections, say.
	// ShortenIdle applies a change to connections already idle.
	IdleNow func() time.Duration
	// WriteTimeout bounds each write to the client; zero means
	// IdleTimeout.
	WriteTimeout time.Duration
	// PingAfter sends a PING on a connection with open streams from
	// which nothing was read for that long; one not answered within
	// PingTimeout closes the connection. Zero sends none.
	PingAfter, PingTimeout time.Duration
	// StreamWindow and ConnWindow are the receive windows.
	StreamWindow, ConnWindow uint32
	// ResetBudget is DefaultResetBudget when zero.
	ResetBudget int
	// Log gets connection-level errors at debug level.
	Log *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutting bool
	// work hands streams to idle handler goroutines; idle is closed (and
	// replaced) when the last connection ends, which ends them.
	work chan *Stream
	idle atomic.Pointer[chan struct{}]
}

// workerIdle is how long a handler goroutine waits for another stream
// before it ends. Reused goroutines keep the stack a handler grew.
const workerIdle = 2 * time.Second

// dispatch runs st's handler on an idle handler goroutine, or a new one.
func (s *Server) dispatch(st *Stream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

func (s *Server) worker(st *Stream) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		// Loaded before the handler runs: its connection's end, which
		// waits for it, closes this channel when it is the last one.
		idle := *s.idle.Load()
		st.c.run(st)
		t.Reset(workerIdle)
		select {
		case st = <-s.work:
		case <-t.C:
			return
		case <-idle:
			return
		}
	}
}

// ConnInfo is what a connection's streams learn of the client.
type ConnInfo struct {
	// Remote is the client's address; Peer is its IP address, unmapped.
	Remote net.Addr
	Peer   netip.Addr
	// TLS is the connection's TLS state, nil on cleartext.
	TLS *tls.ConnectionState
	// Preread are bytes already read from the connection: the client's
	// preface, or part of it, and what followed.
	Preread []byte
}

func (s *Server) settings() {
	if s.MaxConcurrentStreams == 0 {
		s.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if s.MaxHeaderListSize == 0 {
		s.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if s.PrefaceTimeout <= 0 {
		s.PrefaceTimeout = DefaultPrefaceTimeout
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = DefaultIdleTimeout
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = s.IdleTimeout
	}
	if s.StreamWindow == 0 {
		s.StreamWindow = DefaultStreamWindow
	}
	if s.ConnWindow < 65535 {
		s.ConnWindow = DefaultConnWindow
	}
	if s.PingAfter > 0 && s.PingTimeout <= 0 {
		s.PingTimeout = s.PingAfter
	}
	if s.ResetBudget <= 0 {
		s.ResetBudget = DefaultResetBudget
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.work == nil {
		s.work = make(chan *Stream)
		idle := make(chan struct{})
		s.idle.Store(&idle)
	}
}

// ServeConn serves c, whose client chose HTTP/2, until it closes; it
// closes c and returns once every stream's handler has returned.
func (s *Server) ServeConn(c net.Conn, info ConnInfo) {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		_ = c.Close() // nothing was said on it yet
		return
	}
	s.settings()
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	cn := newConn(s, c, info)
	s.conns[cn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, cn)
		if len(s.conns) == 0 {
			idle := make(chan struct{})
			close(*s.idle.Swap(&idle)) // the idle handler goroutines end
		}
		s.mu.Unlock()
		cn.release()
	}()
	cn.serve()
}

// Shutdown sends GOAWAY on every connection, which then closes once its
// streams are done; later connections are closed at once. It does not
// wait: ServeConn returns when a connection is done.
func (s *Server) Shutdown() {
	for _, c := range s.connList(true) {
		c.shutdown()
	}
}

// ShortenIdle moves the idle timeout of every connection with no open
// stream to d after it went idle (at once when that is past); it never
// lengthens one.
func (s *Server) ShortenIdle(d time.Duration) {
	now := time.Now()
	for _, c := range s.connList(false) {
		c.shortenIdle(now, d)
	}
}

// Close closes every connection at once; their handlers see their
// streams reset.
func (s *Server) Close() {
	for _, c := range s.connList(true) {
		c.closeNow(errServerClosed)
	}
}

// connList returns the connections being served, marking the server as
// shutting down first when stop is set (later ones are then refused).
func (s *Server) connList(stop bool) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stop {
		s.shutting = true
	}
	list := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	return list
}

// Conns is the number of connections being served.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
