package fastpath

import (
	"errors"
	"log/slog"
	"net"
	"runtime"
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
			c.SetWaitDeadline(time.Unix(0, since).Add(d))
		}
		c.state.Store(connIdle)
	}
}

// Conn is what the engine knows of a client connection: the connection,
// and whether it waits idle for a request. Only its own goroutine
// touches it, but for the state, which Shutdown and ShortenIdle read.
type Conn struct {
	C   net.Conn
	srv *Server
	// idleSince is when the connection last went idle (Unix nanoseconds),
	// for ShortenIdle.
	state     atomic.Int32
	idleSince atomic.Int64
}

// Connection states, for Shutdown and ShortenIdle.
const (
	connIdle       int32 = iota // waiting for a request: shutdown closes it
	connActive                  // a request is in progress
	connClosed                  // closed by shutdown
	connShortening              // idle, its deadline being shortened
)

// Reset makes c the idle connection nc of srv (nil, nil: none).
func (c *Conn) Reset(srv *Server, nc net.Conn) {
	c.srv, c.C = srv, nc
	c.state.Store(connIdle)
	c.idleSince.Store(0)
}

// Active reports whether a request is in progress.
func (c *Conn) Active() bool { return c.state.Load() == connActive }

// SetActive marks a request in progress; false when shutdown closed the
// connection first. It waits for a ShortenIdle under way to finish, so
// that the deadlines the request sets are not overwritten.
func (c *Conn) SetActive() bool {
	for {
		if c.state.CompareAndSwap(connIdle, connActive) {
			return true
		}
		if c.state.Load() != connShortening {
			return false
		}
		runtime.Gosched()
	}
}

// SetIdle marks the connection idle since now; false when the server is
// shutting down, and the connection must close.
func (c *Conn) SetIdle(now time.Time) bool {
	c.idleSince.Store(now.UnixNano()) // before the state: ShortenIdle reads it
	c.state.Store(connIdle)
	return !c.srv.shutting.Load()
}

// SetWaitDeadline sets the deadline of the wait for the next bytes.
func (c *Conn) SetWaitDeadline(t time.Time) {
	_ = c.C.SetReadDeadline(t) // failing, the wait fails too
}
