package proxy

import (
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The fast path waits for its sockets through its own epoll set rather
// than the runtime's poller. The runtime makes ready the goroutines of one
// poll in the reverse of the order their events came in, so under load
// the connection that has waited longest is served last of its batch; the
// dispatcher below wakes waiters in arrival order, as an event loop (and
// HAProxy) serves them, which shortens the tail of the latency
// distribution.
//
// A waiter is woken through a channel that holds one token: an event that
// comes while its goroutine is busy leaves the token, and the next wait
// returns at once. Sockets are registered edge-triggered, so a waiter reads
// until a read comes back short before it waits again (or sees EAGAIN).

// fastPoller is the process's epoll set for fast-path sockets.
type fastPoller struct {
	epfd int
	rc   syscall.RawConn // of the epoll descriptor, in the runtime's poller

	mu      sync.Mutex
	waiters []*waiter // by slot
	gens    []int32   // registrations per slot, so that an event read before a slot was reused does not wake its new owner
	free    []int32
	events  [128]unix.EpollEvent
	batch   []*waiter // woken by one epoll_wait, reused
}

// waiter is one socket's registration.
type waiter struct {
	ch    chan struct{} // holds at most one token
	timer *time.Timer
	slot  int32
	gen   int32
}

var (
	pollerOnce sync.Once
	poller     *fastPoller // nil when the fast path waits the runtime's way
	// pollerOff makes new sockets wait the runtime's way (tests of that
	// fallback).
	pollerOff atomic.Bool
)

// thePoller starts the poller on first use; nil if it cannot run.
func thePoller() *fastPoller {
	pollerOnce.Do(func() {
		p, err := newFastPoller()
		if err != nil {
			return
		}
		poller = p
		go p.dispatch()
	})
	return poller
}

func newFastPoller() (*fastPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd) // not used
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "fast-path-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close() // not used
		return nil, err
	}
	return &fastPoller{epfd: epfd, rc: rc}, nil
}

// dispatch wakes the waiters of every event in the order epoll reports
// them. It waits for the epoll set to become readable in the runtime's
// poller, and runs for the life of the process.
func (p *fastPoller) dispatch() {
	_ = p.rc.Read(p.drain) // the descriptor is never closed
}

// drain takes the pending events; false waits for more.
func (p *fastPoller) drain(uintptr) bool {
	for {
		n, err := unix.EpollWait(p.epfd, p.events[:], 0)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			return false
		}
		p.mu.Lock()
		p.batch = p.batch[:0]
		for i := range n {
			// The event's data holds the slot and generation.
			slot, gen := p.events[i].Fd, p.events[i].Pad
			if slot >= 0 && int(slot) < len(p.waiters) {
				if w := p.waiters[slot]; w != nil && w.gen == gen {
					p.batch = append(p.batch, w)
				}
			}
		}
		p.mu.Unlock()
		for _, w := range p.batch {
			w.wake()
		}
		clear(p.batch)
		if n < len(p.events) {
			return false
		}
	}
}

// watch registers the socket of rc; nil when there is no poller or it
// fails, and the caller waits the runtime's way.
func watch(rc syscall.RawConn) *waiter {
	if pollerOff.Load() {
		return nil
	}
	p := thePoller()
	if p == nil {
		return nil
	}
	var w *waiter
	if err := rc.Control(func(fd uintptr) { w = p.register(int(fd)) }); err != nil {
		return nil
	}
	return w
}

// unwatch removes the socket of rc from the set. The socket must still be
// open, or already closed (which removed it): rc.Control holds the
// descriptor, so that a number reused by a new socket is never touched.
func unwatch(rc syscall.RawConn, w *waiter) {
	_ = rc.Control(func(fd uintptr) {
		_ = unix.EpollCtl(poller.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) // only fails when it is not there
	})
	poller.release(w)
	w.wake() // a goroutine still waiting sees the socket closed
}

// register adds fd to the set, edge-triggered; nil when that fails.
func (p *fastPoller) register(fd int) *waiter {
	p.mu.Lock()
	var slot int32
	if k := len(p.free); k > 0 {
		slot = p.free[k-1]
		p.free = p.free[:k-1]
	} else {
		n := len(p.waiters)
		if n >= math.MaxInt32 {
			p.mu.Unlock()
			return nil
		}
		slot = int32(n)
		p.waiters = append(p.waiters, nil)
		p.gens = append(p.gens, 0)
	}
	p.gens[slot]++
	w := &waiter{ch: make(chan struct{}, 1), slot: slot, gen: p.gens[slot]}
	p.waiters[slot] = w
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET}
	ev.Fd, ev.Pad = slot, w.gen
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.release(w)
		return nil
	}
	return w
}

func (p *fastPoller) release(w *waiter) {
	p.mu.Lock()
	if p.waiters[w.slot] == w {
		p.waiters[w.slot] = nil
		p.free = append(p.free, w.slot)
	}
	p.mu.Unlock()
}

// wake leaves a token, unless one is there already.
func (w *waiter) wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// clear drops a token left by an earlier event.
func (w *waiter) clear() {
	select {
	case <-w.ch:
	default:
	}
}

// wait waits for an event, or until deadline (zero: none). It returns
// false when the deadline passed first.
func (w *waiter) wait(deadline time.Time) bool {
	if deadline.IsZero() {
		<-w.ch
		return true
	}
	select {
	case <-w.ch:
		return true
	default:
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-w.ch:
		w.timer.Stop()
		return true
	case <-w.timer.C:
		return false
	}
}
