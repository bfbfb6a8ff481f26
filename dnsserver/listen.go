package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
)

// bindAttempts bounds the retries when a random port (":0") is free for
// UDP but taken for TCP.
const bindAttempts = 8

// listeners are a server's sockets and the goroutines serving them.
type listeners struct {
	mu      sync.Mutex
	closing bool
	udp     []udpConn
	tcp     []net.Listener
	conns   map[net.Conn]struct{}
	addrs   []net.Addr
	wg      sync.WaitGroup
	done    chan struct{} // closed by Shutdown
}

// udpConn is one UDP socket and its serving loop.
type udpConn interface {
	serve(s *Server)
	Close() error
}

// ListenAndServe binds UDP and TCP on each address and serves them until
// ctx ends or Shutdown is called. It returns once everything is bound (or
// nothing is, on error).
func (s *Server) ListenAndServe(ctx context.Context, addrs []string) error {
	l := &s.lis
	l.mu.Lock()
	if l.closing || l.done != nil {
		l.mu.Unlock()
		return errors.New("listening: server already started or shut down")
	}
	l.done = make(chan struct{})
	var udps []udpConn
	var tcps []net.Listener
	var bound []net.Addr
	fail := func(err error) error {
		for _, u := range udps {
			_ = u.Close()
		}
		for _, t := range tcps {
			_ = t.Close()
		}
		l.mu.Unlock()
		return err
	}
	for _, a := range addrs {
		us, t, addr, err := s.bind(ctx, a)
		if err != nil {
			return fail(fmt.Errorf("listening on %s: %w", a, err))
		}
		udps = append(udps, us...)
		tcps = append(tcps, t)
		bound = append(bound, addr)
	}
	l.udp, l.tcp, l.addrs = udps, tcps, bound
	for _, u := range udps {
		l.wg.Go(func() { u.serve(s) })
	}
	for _, t := range tcps {
		l.wg.Go(func() { s.serveTCP(t) })
	}
	done := l.done
	l.wg.Go(func() {
		select {
		case <-ctx.Done():
			s.stop()
		case <-done:
		}
	})
	l.wg.Go(func() { s.maintain(done) })
	l.mu.Unlock()
	for _, a := range bound {
		s.log.Info("dns listening", "addr", a.String())
	}
	return nil
}

// bind opens the UDP sockets and the TCP listener of one address, on the
// same port.
func (s *Server) bind(ctx context.Context, addr string) ([]udpConn, net.Listener, net.Addr, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, nil, err
	}
	n := s.opts.UDPSockets
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if !reusePortSupported {
		n = 1
	}
	var lastErr error
	for range bindAttempts {
		us, uaddr, err := listenUDP(ctx, addr, n)
		if err != nil {
			return nil, nil, nil, err
		}
		var lc net.ListenConfig
		t, err := lc.Listen(ctx, "tcp", uaddr.String())
		if err == nil {
			return us, t, uaddr, nil
		}
		for _, u := range us {
			_ = u.Close()
		}
		lastErr = err
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, nil, lastErr
}

// Addrs returns the bound UDP address of each listen address; TCP is
// bound on the same address and port.
func (s *Server) Addrs() []net.Addr {
	s.lis.mu.Lock()
	defer s.lis.mu.Unlock()
	return append([]net.Addr(nil), s.lis.addrs...)
}

// Shutdown stops accepting queries, lets TCP connections answer what they
// have read, and waits for every goroutine until ctx ends, when the
// remaining connections are closed. It is safe to call more than once and
// before ListenAndServe.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	l := &s.lis
	finished := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.conns {
			_ = c.Close()
		}
		l.mu.Unlock()
		<-finished
		return fmt.Errorf("dns shutdown: %w", ctx.Err())
	}
}

// stop closes the sockets and ends the TCP connections' reading.
func (s *Server) stop() {
	l := &s.lis
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closing {
		l.closing = true
		if l.done != nil {
			close(l.done)
		}
		for _, u := range l.udp {
			_ = u.Close()
		}
		for _, t := range l.tcp {
			_ = t.Close()
		}
		for c := range l.conns {
			closeRead(c)
		}
	}
}

// closeRead ends c's reading side so that its loop finishes after the
// queries already received.
func closeRead(c net.Conn) {
	if tc, ok := c.(interface{ CloseRead() error }); ok {
		_ = tc.CloseRead()
		return
	}
	_ = c.Close()
}

// track registers a new TCP connection; false when it must be closed (the
// server is shutting down or at its connection limit).
func (l *listeners) track(c net.Conn, max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing || len(l.conns) >= max {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *listeners) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}
