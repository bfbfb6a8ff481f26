package proxy

import (
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fast path's two hot waits — a client connection's wait for its next
// request, and a request's wait for the upstream's answer — are woken in
// the order their sockets became ready, as an event loop serves them.
//
// The runtime's poller makes ready the goroutines of one poll in the
// reverse of the order their events came in. Under load a poll returns
// many events, so the connection that has waited longest is served last
// of its batch, and a request can be last twice (once per side): the
// latency distribution widens from about its 90th percentile up while its
// mean stays the same. The sockets are therefore also in an epoll set of
// the proxy's own, edge-triggered, whose events one dispatcher goroutine
// turns into wake-ups in arrival order. The runtime still polls the
// sockets for every other wait (the rest of a long head or body, room to
// write); its events for a socket nobody waits on there only mark it
// ready.
//
// A nil *waiter is a socket left to the runtime's poller: its methods do
// nothing, and its read is rc.Read.
//
// A waiter is woken through a channel that holds one token: an event that
// comes while its goroutine is busy leaves the token, and the next wait
// ends at once with a read that may find nothing, as a wait in the
// runtime's poller may. Deadlines are kept by a sweep every
// orderSweepEvery, not by a timer per wait, so a wait ends up to that much
// after its deadline.

// orderSweepEvery is how often the deadlines of waits are checked.
const orderSweepEvery = 10 * time.Millisecond

// orderedWaits, when false, leaves new sockets to the runtime's poller
// (for tests of that path; it is the fallback when the set cannot be made).
var orderedWaits atomic.Bool

func init() { orderedWaits.Store(true) }

// orderPoller is the process's epoll set for the hot waits.
type orderPoller struct {
	epfd int
	f    *os.File        // of epfd
	rc   syscall.RawConn // of f, which waits in the runtime's poller

	mu      sync.Mutex
	waiters []*waiter // by slot
	gens    []int32   // registrations per slot: an event for a slot's earlier socket is not its new owner's
	free    []int32
	events  [128]unix.EpollEvent
	batch   []*waiter // woken by one read of the set, reused
}

// waiter is one socket's registration in the set.
type waiter struct {
	ch       chan struct{} // holds at most one token
	deadline atomic.Int64  // of the wait, in Unix nanoseconds; 0: none
	slot     int32
	gen      int32
	// The callback of the read in progress, run through step (bound
	// once, so that a wait allocates nothing), and its result.
	fn   func(fd uintptr) bool
	done bool
	step func(fd uintptr)
}

var (
	orderOnce sync.Once
	order     *orderPoller // nil when the set could not be made
)

// theOrderPoller starts the set on first use; nil if it cannot run.
func theOrderPoller() *orderPoller {
	orderOnce.Do(func() {
		p, err := newOrderPoller()
		if err != nil {
			return
		}
		order = p
		go p.dispatch()
		go p.sweep()
	})
	return order
}

func newOrderPoller() (*orderPoller, error) {
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
	return &orderPoller{epfd: epfd, f: f, rc: rc}, nil
}

// dispatch wakes the waiters of the set's events. It waits for the set to
// become readable in the runtime's poller, for the life of the process
// (the set is never closed).
func (p *orderPoller) dispatch() {
	_ = p.rc.Read(p.drain) // only fails if the set were closed
}

// drain takes the pending events and wakes their waiters in order; false
// waits for more.
func (p *orderPoller) drain(uintptr) bool {
	for {
		n := p.collect()
		wakeInOrder(p.batch)
		clear(p.batch)
		if n < len(p.events) {
			return false
		}
	}
}

// collect reads the ready events into p.batch, as their waiters in the
// order of the events, and returns how many events it read.
func (p *orderPoller) collect() int {
	p.batch = p.batch[:0]
	n := p.wait()
	if n <= 0 {
		return 0
	}
	p.mu.Lock()
	for i := range n {
		slot, gen := p.events[i].Fd, p.events[i].Pad
		if int(slot) < len(p.waiters) {
			if w := p.waiters[slot]; w != nil && w.gen == gen {
				p.batch = append(p.batch, w)
			}
		}
	}
	p.mu.Unlock()
	return n
}

// wakeInOrder wakes the waiters of batch so that they run in its order. A
// goroutine made ready by another runs next, ahead of the run queue, and
// sends the one there before it to the queue's end: so the first is woken
// last.
func wakeInOrder(batch []*waiter) {
	if len(batch) == 0 {
		return
	}
	for _, w := range batch[1:] {
		w.wake()
	}
	batch[0].wake()
}

// wait reads the ready events without waiting, as a raw call like the
// fast path's reads; 0 when there are none.
func (p *orderPoller) wait() int {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd),
			uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0) //nolint:gosec // G103: the system call's buffer
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0
		}
		return int(n)
	}
}

// sweep wakes the waiters whose deadline passed.
func (p *orderPoller) sweep() {
	t := time.NewTicker(orderSweepEvery)
	defer t.Stop()
	for now := range t.C {
		ns := now.UnixNano()
		p.mu.Lock()
		for _, w := range p.waiters {
			if w != nil {
				if d := w.deadline.Load(); d != 0 && d <= ns {
					w.wake()
				}
			}
		}
		p.mu.Unlock()
	}
}

// watch registers the socket of rc; nil when ordered waits are off or the
// registration fails, and the socket waits in the runtime's poller.
func watch(rc syscall.RawConn) *waiter {
	if !orderedWaits.Load() {
		return nil
	}
	p := theOrderPoller()
	if p == nil {
		return nil
	}
	var w *waiter
	if err := rc.Control(func(fd uintptr) { w = p.register(int(fd)) }); err != nil {
		return nil
	}
	return w
}

// register adds fd to the set, edge-triggered; nil when that fails.
func (p *orderPoller) register(fd int) *waiter {
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
	w.step = w.run
	p.waiters[slot] = w
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: slot, Pad: w.gen}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.release(w)
		return nil
	}
	return w
}

// forget gives w's slot back. Closing the socket takes it out of the set;
// a socket that stays open (handed to net/http) is taken out by leave.
func (w *waiter) forget() {
	if w != nil {
		order.release(w)
	}
}

// leave takes the socket of rc out of the set and forgets w, for a socket
// that stays open.
func (w *waiter) leave(rc syscall.RawConn) {
	if w == nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.EpollCtl(order.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) // fails only if it is not there
	})
	w.forget()
}

func (p *orderPoller) release(w *waiter) {
	p.mu.Lock()
	if p.waiters[w.slot] == w {
		p.waiters[w.slot] = nil
		p.free = append(p.free, w.slot)
	}
	p.mu.Unlock()
}

// wake leaves a token, unless one is there already.
func (w *waiter) wake() {
	if w == nil {
		return
	}
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// setDeadline sets the deadline of the waits that follow (zero: none).
func (w *waiter) setDeadline(t time.Time) {
	switch {
	case w == nil:
		return
	case t.IsZero():
		w.deadline.Store(0)
	default:
		w.deadline.Store(t.UnixNano())
	}
}

// read is rc.Read(fn) with its waits in the set: fn runs with the
// descriptor until it returns true, and each false waits for an event.
// A token left before read began is dropped, as rc.Read resets the
// socket's readiness first. It fails with os.ErrDeadlineExceeded when the
// deadline passed, and with rc.Control's error once the socket is closed.
func (w *waiter) read(rc syscall.RawConn, fn func(fd uintptr) bool) error {
	if w == nil {
		return rc.Read(fn)
	}
	select {
	case <-w.ch:
	default:
	}
	w.fn = fn
	defer func() {
		w.fn = nil
		w.deadline.Store(0) // each wait sets its own
	}()
	for {
		w.done = false
		if err := rc.Control(w.step); err != nil {
			return err
		}
		if w.done {
			return nil
		}
		if d := w.deadline.Load(); d != 0 && d <= time.Now().UnixNano() {
			return os.ErrDeadlineExceeded
		}
		<-w.ch
	}
}

// run is w.step: it keeps the result of the callback of the read in
// progress.
func (w *waiter) run(fd uintptr) { w.done = w.fn(fd) }
