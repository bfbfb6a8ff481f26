package fastpath

import (
	"errors"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server is the connection engine of one listener: it accepts
// connections, tracks the ones it serves, and stops them, idle ones at
// once and busy ones after their response. What a connection carries is
// its owner's: the engine knows of it only the Conn it tracks.
type Server struct {
	ln  net.Listener
	log *slog.Logger

	// ReadHeader bounds the wait for a request head (and a TLS
	// handshake); Idle the wait for the next request, BusyIdle instead
	// while Busy is set (nil: never).
	ReadHeader, Idle, BusyIdle time.Duration
	Busy                       *atomic.Bool

	// The owner's hooks, bound once. Route serves the request whose head,
	// parsed into c.Rq, is the first n bytes of c.In: it is called once
	// per request, and is the only call per request from the engine to
	// its owner. ServeH2 serves a connection as HTTP/2, preread being its
	// bytes already read. H2NetHTTP hands HTTP/2 connections to net/http
	// instead.
	Route     func(c *Conn, n int) Action
	ServeH2   func(c *Conn, preread []byte)
	H2NetHTTP bool

	// Hand is the listener net/http serves; MaxHeaderBytes is its
	// server's, for screening what is handed to it. slots are the places
	// in the connection counts of connections handed to net/http as they
	// are (h2 by ALPN), given back when net/http reports them closed
	// (ConnState); the others are given back by handedConn.Close.
	Hand           *Handoff
	MaxHeaderBytes int
	slots          sync.Map // net.Conn → Slot

	// OnShutdown and OnClose, when set, are called by Shutdown and
	// CloseAll for what the owner serves beside the tracked connections.
	OnShutdown, OnClose func()

	mu          sync.Mutex
	conns       map[*Conn]struct{}
	shutting    atomic.Bool
	drained     chan struct{} // closed once shutting and no connection is left
	drainedOnce sync.Once
}

// NewServer returns the engine of ln; log takes its errors.
func NewServer(ln net.Listener, log *slog.Logger) *Server {
	return &Server{ln: ln, log: log, conns: make(map[*Conn]struct{}), drained: make(chan struct{})}
}

// Accept runs the accept loop until the listener fails or closes, backing
// off on resource exhaustion as net/http does. Each connection admit
// takes is served by serve on a goroutine of its own; one it refuses it
// has closed.
func Accept[S any](s *Server, admit func(net.Conn) (S, bool), serve func(net.Conn, S)) error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) &&
				!errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.ENOMEM) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Error("accepting a connection", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		slot, ok := admit(c)
		if !ok {
			continue
		}
		go serve(c, slot)
	}
}

// Slot is a connection's place in the connection counts, given back once
// whoever closes the connection.
type Slot interface{ Release() }

// ServeConn serves the client connection c, which holds slot, until it
// closes or is handed to net/http.
func (s *Server) ServeConn(c net.Conn, slot Slot) {
	fc := s.newConn(c)
	if !s.Track(fc) {
		_ = c.Close() // shutting down
		slot.Release()
		fc.release()
		return
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic serving a connection", "panic", v, "stack", string(debug.Stack()))
			_ = c.Close() // its state is unknown
			slot.Release()
			s.Untrack(fc)
		}
	}()
	fc.slot = slot
	handed := fc.serve()
	s.Untrack(fc)
	if !handed {
		_ = c.Close() // done with it; an error changes nothing
		slot.Release()
	}
	fc.release()
}

// isH2Preface reports whether b starts with the HTTP/2 client preface's
// first line, as a cleartext connection by prior knowledge does.
func (s *Server) isH2Preface(b []byte) bool {
	return !s.H2NetHTTP && len(b) >= len(h2PrefaceLine) && string(b[:len(h2PrefaceLine)]) == h2PrefaceLine
}

const h2PrefaceLine = "PRI * HTTP/2.0\r\n\r\n"

// Shutting reports whether the server is shutting down: a connection
// must close once its response is done.
func (s *Server) Shutting() bool { return s.shutting.Load() }

// Drained is closed once the server is shutting down and no tracked
// connection is left.
func (s *Server) Drained() <-chan struct{} { return s.drained }

// Track starts tracking c; false when shutting down, and c must close.
func (s *Server) Track(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// Untrack stops tracking c.
func (s *Server) Untrack(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	done := s.shutting.Load() && len(s.conns) == 0
	s.mu.Unlock()
	if done {
		s.drainedOnce.Do(func() { close(s.drained) })
	}
}

// Shutdown stops accepting; idle connections close now, busy ones after
// their response. Safe to call more than once.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.shutting.Store(true)
	for c := range s.conns {
		if c.state.CompareAndSwap(connIdle, connClosed) {
			_ = c.C.Close() // its goroutine sees the read fail
		}
	}
	done := len(s.conns) == 0
	s.mu.Unlock()
	if s.OnShutdown != nil {
		s.OnShutdown()
	}
	_ = s.ln.Close() // the accept loop ends with it
	if done {
		s.drainedOnce.Do(func() { close(s.drained) })
	}
}

// CloseAll closes every connection, busy or not.
func (s *Server) CloseAll() {
	s.mu.Lock()
	s.shutting.Store(true)
	for c := range s.conns {
		c.state.Store(connClosed)
		_ = c.C.Close() // its goroutine sees the read or write fail
	}
	s.mu.Unlock()
	if s.OnClose != nil {
		s.OnClose()
	}
}

// ShortenIdle moves the deadline of every idle connection to d after it
// went idle.
func (s *Server) ShortenIdle(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if !c.state.CompareAndSwap(connIdle, connShortening) {
			continue // busy: it waits with the short timeout when next idle
		}
		if since := c.idleSince.Load(); since != 0 {
			c.setWaitDeadline(time.Unix(0, since).Add(d))
		}
		c.state.Store(connIdle)
	}
}

// Connection states, for Shutdown and ShortenIdle.
const (
	connIdle       int32 = iota // waiting for a request: shutdown closes it
	connActive                  // a request is in progress
	connClosed                  // closed by shutdown
	connShortening              // idle, its deadline being shortened
)

// Active reports whether a request is in progress.
func (fc *Conn) Active() bool { return fc.state.Load() == connActive }

// SetActive marks a request in progress; false when shutdown closed the
// connection first. It waits for a ShortenIdle under way to finish, so
// that the deadlines the request sets are not overwritten.
func (fc *Conn) SetActive() bool {
	for {
		if fc.state.CompareAndSwap(connIdle, connActive) {
			return true
		}
		if fc.state.Load() != connShortening {
			return false
		}
		runtime.Gosched()
	}
}

// setIdle marks the connection idle since now; false when the server is
// shutting down, and the connection must close.
func (fc *Conn) setIdle(now time.Time) bool {
	fc.idleSince.Store(now.UnixNano()) // before the state: ShortenIdle reads it
	fc.state.Store(connIdle)
	return !fc.srv.shutting.Load()
}

// setWaitDeadline sets the deadline of the wait for the next bytes.
func (fc *Conn) setWaitDeadline(t time.Time) {
	_ = fc.C.SetReadDeadline(t) // failing, the wait fails too
}
