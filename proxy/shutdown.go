package proxy

import (
	"context"
	"errors"
	"sync"
)

// servers are the listeners a Proxy's Serve runs.
type servers struct {
	mu      sync.Mutex
	set     map[*fastServer]struct{}
	stopped bool
}

// add records fs; false after Shutdown.
func (s *servers) add(fs *fastServer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	if s.set == nil {
		s.set = make(map[*fastServer]struct{})
	}
	s.set[fs] = struct{}{}
	return true
}

func (s *servers) remove(fs *fastServer) {
	s.mu.Lock()
	delete(s.set, fs)
	s.mu.Unlock()
}

// list returns the servers; with stop set, no more may be added.
func (s *servers) list(stop bool) []*fastServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = s.stopped || stop
	out := make([]*fastServer, 0, len(s.set))
	for fs := range s.set {
		out = append(out, fs)
	}
	return out
}

// shortenIdle gives the idle connections of every server the busy idle
// timeout.
func (s *servers) shortenIdle() {
	for _, fs := range s.list(false) {
		fs.shortenIdle()
	}
}

// Shutdown stops every listener Serve runs and waits for their
// connections: it stops accepting, closes idle connections at once and
// busy ones after their response (net/http's through srv.Shutdown), and
// returns once none is left. When ctx ends first it closes the
// connections that remain and returns ctx's error; a ctx already done
// closes them all at once. Serve is not accepted after Shutdown. The
// proxy's idle upstream connections stay (Close closes them).
func (p *Proxy) Shutdown(ctx context.Context) error {
	list := p.serving.list(true)
	errs := make(chan error, len(list))
	for _, fs := range list {
		go func() { errs <- fs.stop(ctx) }()
	}
	var all []error
	for range list {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if ctx.Err() != nil && len(all) > 0 {
		return ctx.Err()
	}
	return errors.Join(all...)
}

// stop shuts fs and its server down within ctx, and closes what remains
// once ctx is done.
func (fs *fastServer) stop(ctx context.Context) error {
	fs.stopped.Store(true)
	fs.eng.Shutdown()
	slow := make(chan error, 1)
	go func() { slow <- fs.srv.Shutdown(ctx) }()
	var err error
	select {
	case <-fs.eng.Drained():
		err = <-slow // ends with ctx at the latest
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		fs.eng.CloseAll()
		_ = fs.srv.Close() // what net/http still holds
	}
	return err
}
