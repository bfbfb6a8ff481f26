package fastpath

import (
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Buffer sizes of upstream connections.
const (
	// upstreamBufSize is the initial read buffer of an upstream
	// connection; it grows for response heads up to maxResponseHead.
	upstreamBufSize = 8 << 10
	maxResponseHead = 1 << 20
)

// Upstream connection settings, the same as the proxy's http.Transport
// has.
const (
	IdleConnTimeout = 90 * time.Second
	TCPKeepAlive    = 30 * time.Second
)

// The idle upstream connections: at most IdleLimit per endpoint, and
// every IdlePurgeEvery half of those unused for that long are closed
// (variables for tests).
var (
	IdleLimit      = 256
	IdlePurgeEvery = 5 * time.Second
)

// UpConn is a keep-alive HTTP/1.1 connection to an http endpoint.
type UpConn struct {
	C      net.Conn
	In     Buf
	idleAt time.Time // when it went back to the pool
	reused bool      // it served a request before this one

	// rc is c's file descriptor for Send, nil when c has none; onReady
	// is u.ready bound once, so that a request allocates nothing.
	rc      syscall.RawConn
	onReady func(fd uintptr) bool
	// onPeek is u.peek bound once, for Clean; peekBuf and peeked are its
	// buffer and result.
	onPeek  func(fd uintptr)
	peekBuf [1]byte
	peeked  bool
	// rd reads c with raw reads when rc is set (src says which).
	rd sockReader
	// The state of one send: what is left to write, what was read, and
	// the error that ended it.
	out   []byte
	wrote bool
	got   int
	ioErr error
}

var upBufs = sync.Pool{New: func() any { return new([upstreamBufSize]byte) }}

func newUpConn(c net.Conn) *UpConn {
	u := &UpConn{C: c, In: Buf{B: upBufs.Get().(*[upstreamBufSize]byte)[:]}}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			u.rc = rc
			u.onReady = u.ready
			u.onPeek = u.peek
			u.rd.reset(c, rc)
			u.rd.step = u.rd.readable
		}
	}
	return u
}

// Send writes a request and reads the first bytes of the answer into the
// buffer. It returns whether the whole request was written and how many
// bytes were read, which is 0 with the error that ended the read.
//
// A read right after the request is written cannot find the answer there
// yet: net.Conn.Read would make a system call that fails with EAGAIN before
// waiting. send writes from inside a raw read instead, after the poller's
// readiness was reset, and only then waits: the answer, or the reset that
// answers a request on a connection the upstream closed, arrives after the
// write, so its readiness event is not lost. deadline, which must be c's
// read deadline, bounds the wait.
func (u *UpConn) Send(wire []byte, deadline time.Time) (sent bool, n int, err error) {
	rest := wire
	if u.rc != nil && u.In.W < len(u.In.B) {
		u.out, u.wrote, u.got, u.ioErr = wire, false, 0, nil
		err := u.rc.Read(u.onReady)
		rest, u.out = u.out, nil
		switch {
		case err != nil:
			return u.wrote, 0, err
		case u.ioErr != nil:
			return u.wrote, 0, u.ioErr
		case u.wrote:
			return true, u.got, nil
		}
		// A partial (or refused) non-blocking write: the rest goes the
		// blocking way, under the write deadline.
	}
	if _, err := u.C.Write(rest); err != nil {
		return false, 0, err
	}
	n, err = u.In.Fill(u.Src(), true)
	return true, n, err
}

// Src is what the connection is read through.
func (u *UpConn) Src() io.Reader {
	if u.rc != nil {
		return &u.rd
	}
	return u.C
}

// ready is Send's raw read callback: the first call writes the request,
// later ones read the answer. It returns false to wait for readability.
func (u *UpConn) ready(fd uintptr) bool {
	if !u.wrote {
		n, err := writeFD(fd, u.out)
		switch {
		case err == unix.EAGAIN:
			return true // Send writes it the blocking way
		case err != nil:
			u.ioErr = &net.OpError{Op: "write", Net: "tcp", Addr: u.C.RemoteAddr(), Err: os.NewSyscallError("write", err)}
			return true
		}
		u.out = u.out[n:]
		if len(u.out) > 0 {
			return true
		}
		u.wrote = true
		return false
	}
	n, err := readFD(fd, u.In.B[u.In.W:])
	switch {
	case err == unix.EAGAIN:
		return false
	case err != nil:
		u.ioErr = &net.OpError{Op: "read", Net: "tcp", Addr: u.C.RemoteAddr(), Err: os.NewSyscallError("read", err)}
	case n == 0:
		u.ioErr = io.EOF
	default:
		u.In.W += n
		u.got = n
	}
	return true
}

// Close closes the connection and gives its buffer back.
func (u *UpConn) Close() {
	_ = u.C.Close() // nothing to do about a failed close
	if len(u.In.B) == upstreamBufSize {
		upBufs.Put((*[upstreamBufSize]byte)(u.In.B))
	}
	u.In = Buf{}
}

// Clean reports whether an idle connection may carry a request: nothing
// is buffered, and a non-blocking peek finds nothing to read. Bytes the
// upstream wrote unasked (a stray response, a 408 before its close) and a
// close or reset by the upstream all show to the peek.
func (u *UpConn) Clean() bool {
	if u.rc == nil || len(u.In.Buffered()) > 0 {
		return false
	}
	u.peeked = false
	if err := u.rc.Control(u.onPeek); err != nil {
		return false
	}
	return u.peeked
}

// peek is Clean's callback: peeked is set when there is nothing to read.
func (u *UpConn) peek(fd uintptr) {
	_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&u.peekBuf[0])), 1, //nolint:gosec // G103: the system call's buffer
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	u.peeked = e == unix.EAGAIN
}

// Pool holds the idle connections of one endpoint, newest last. It is
// shared by every service that routes to the endpoint.
type Pool struct {
	mu      sync.Mutex
	addr    string // host:port to dial, set on first use
	idle    []*UpConn
	timer   *time.Timer // runs sweep while connections are idle
	retired bool        // the endpoint left the configuration
}

// Get returns an idle connection, or nil.
func (p *Pool) Get(now time.Time) *UpConn {
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		u := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(u.idleAt) < IdleConnTimeout {
			p.mu.Unlock()
			u.reused = true
			return u
		}
		u.Close()
	}
	p.mu.Unlock()
	return nil
}

// Put returns a connection whose response was read in full.
func (p *Pool) Put(u *UpConn, now time.Time) {
	p.mu.Lock()
	if p.retired || len(p.idle) >= IdleLimit {
		p.mu.Unlock()
		u.Close()
		return
	}
	u.idleAt = now
	p.idle = append(p.idle, u)
	if p.timer == nil {
		p.timer = time.AfterFunc(IdlePurgeEvery, p.sweep)
	}
	p.mu.Unlock()
}

// sweep runs every IdlePurgeEvery while connections are idle. It closes
// those idle for IdleConnTimeout, and half of those left unused for a
// whole period, as HAProxy's pool-purge-delay does: the pool shrinks to
// what the traffic uses soon after a burst, without closing at once
// everything a lull left unused. The oldest are first, and those are the
// unused ones: Get takes the newest.
func (p *Pool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	expired, unused := 0, 0
	for _, u := range p.idle {
		age := now.Sub(u.idleAt)
		if age < IdlePurgeEvery {
			break // and so are all that follow
		}
		if age >= IdleConnTimeout {
			expired++
		} else {
			unused++
		}
	}
	n := expired + unused/2
	for _, u := range p.idle[:n] {
		u.Close()
	}
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	if len(p.idle) == 0 {
		p.timer = nil
		return
	}
	p.timer = time.AfterFunc(IdlePurgeEvery, p.sweep)
}

// CloseIdle closes every idle connection.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.idle {
		u.Close()
	}
	clear(p.idle)
	p.idle = p.idle[:0]
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// Idle is the number of idle connections.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Retire closes the idle connections and keeps none from now on.
func (p *Pool) Retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
	p.CloseIdle()
}

// Dial opens a new connection to the http endpoint at target, giving up at
// deadline or after the connect timeout.
func (p *Pool) Dial(target *url.URL, connect time.Duration, deadline time.Time) (*UpConn, error) {
	p.mu.Lock()
	if p.addr == "" {
		p.addr = dialAddr(target)
	}
	addr := p.addr
	p.mu.Unlock()
	d := net.Dialer{Timeout: connect, Deadline: deadline, KeepAlive: TCPKeepAlive}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return newUpConn(c), nil
}

// dialAddr is the host:port of an http endpoint.
func dialAddr(target *url.URL) string {
	if target.Port() != "" {
		return target.Host
	}
	return net.JoinHostPort(target.Hostname(), "80")
}
