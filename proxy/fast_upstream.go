package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Buffer sizes of the fast path.
const (
	// clientBufSize holds a request head; a larger head is handed to
	// net/http, which serves it (or answers 431).
	clientBufSize = 8 << 10
	// upstreamBufSize is the initial read buffer of an upstream
	// connection; it grows for response heads up to maxResponseHead.
	upstreamBufSize = 8 << 10
	maxResponseHead = 1 << 20
	// staleCheckAfter is how long a pooled connection may have been idle
	// before it is checked for a close by the upstream before use.
	staleCheckAfter = time.Second
)

// inbuf is a read buffer: bytes b[r:w] are read and not yet consumed.
type inbuf struct {
	b    []byte
	r, w int
}

var errBufferFull = errors.New("proxy: buffer full")

func (in *inbuf) buffered() []byte { return in.b[in.r:in.w] }

func (in *inbuf) consume(n int) {
	in.r += n
	if in.r == in.w {
		in.r, in.w = 0, 0
	}
}

// fill reads once from c into the free space, moving the unread bytes to
// the front first when compact is set and that makes room. It returns
// errBufferFull when there is no room.
func (in *inbuf) fill(c io.Reader, compact bool) (int, error) {
	if in.w == len(in.b) {
		if !compact || in.r == 0 {
			return 0, errBufferFull
		}
		in.w = copy(in.b, in.b[in.r:in.w])
		in.r = 0
	}
	n, err := c.Read(in.b[in.w:])
	in.w += n
	return n, err
}

// grow doubles the buffer up to limit; false when it is that large.
func (in *inbuf) grow(limit int) bool {
	if len(in.b) >= limit {
		return false
	}
	nb := make([]byte, min(2*len(in.b), limit))
	in.w = copy(nb, in.b[in.r:in.w])
	in.r = 0
	in.b = nb
	return true
}

// upConn is a keep-alive HTTP/1.1 connection to an http endpoint.
type upConn struct {
	c      net.Conn
	in     inbuf
	idleAt time.Time // when it went back to the pool
	reused bool      // it served a request before this one

	// rc is c's file descriptor for send, nil when c has none; onReady
	// is u.ready bound once, so that a request allocates nothing.
	rc      syscall.RawConn
	onReady func(fd uintptr) bool
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

func newUpConn(c net.Conn) *upConn {
	u := &upConn{c: c, in: inbuf{b: upBufs.Get().(*[upstreamBufSize]byte)[:]}}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			u.rc = rc
			u.onReady = u.ready
			u.rd = sockReader{sockOp{c: c, rc: rc}}
			u.rd.step = u.rd.readable
		}
	}
	return u
}

// send writes a request and reads the first bytes of the answer into the
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
func (u *upConn) send(wire []byte, deadline time.Time) (sent bool, n int, err error) {
	rest := wire
	if u.rc != nil && u.in.w < len(u.in.b) {
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
	if _, err := u.c.Write(rest); err != nil {
		return false, 0, err
	}
	n, err = u.in.fill(u.src(), true)
	return true, n, err
}

// src is what the connection is read through.
func (u *upConn) src() io.Reader {
	if u.rc != nil {
		return &u.rd
	}
	return u.c
}

// ready is send's raw read callback: the first call writes the request,
// later ones read the answer. It returns false to wait for readability.
func (u *upConn) ready(fd uintptr) bool {
	if !u.wrote {
		n, err := writeFD(fd, u.out)
		switch {
		case err == unix.EAGAIN:
			return true // send writes it the blocking way
		case err != nil:
			u.ioErr = &net.OpError{Op: "write", Net: "tcp", Addr: u.c.RemoteAddr(), Err: os.NewSyscallError("write", err)}
			return true
		}
		u.out = u.out[n:]
		if len(u.out) > 0 {
			return true
		}
		u.wrote = true
		return false
	}
	n, err := readFD(fd, u.in.b[u.in.w:])
	switch {
	case err == unix.EAGAIN:
		return false
	case err != nil:
		u.ioErr = &net.OpError{Op: "read", Net: "tcp", Addr: u.c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
	case n == 0:
		u.ioErr = io.EOF
	default:
		u.in.w += n
		u.got = n
	}
	return true
}

// close closes the connection and gives its buffer back.
func (u *upConn) close() {
	_ = u.c.Close() // nothing to do about a failed close
	if len(u.in.b) == upstreamBufSize {
		upBufs.Put((*[upstreamBufSize]byte)(u.in.b))
	}
	u.in = inbuf{}
}

// closedByPeer reports whether the upstream closed (or wrote to) an idle
// connection: a non-blocking peek that reads nothing.
func (u *upConn) closedByPeer() bool {
	sc, ok := u.c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	dead := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		// EOF (n == 0), an error other than "nothing to read", or bytes
		// nobody asked for: the connection is not fit for a request.
		dead = n >= 0 && err == nil || err != nil && err != unix.EAGAIN
		return true
	})
	return dead || err != nil
}

// upPool holds the idle connections of one endpoint, newest last. It is
// shared by every service that routes to the endpoint.
type upPool struct {
	mu      sync.Mutex
	addr    string // host:port to dial, set on first use
	idle    []*upConn
	timer   *time.Timer // runs sweep while connections are idle
	retired bool        // the endpoint left the configuration
}

// get returns an idle connection, or nil.
func (p *upPool) get(now time.Time) *upConn {
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		u := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(u.idleAt) < idleConnTimeout {
			p.mu.Unlock()
			u.reused = true
			return u
		}
		u.close()
	}
	p.mu.Unlock()
	return nil
}

// put returns a connection whose response was read in full.
func (p *upPool) put(u *upConn, now time.Time) {
	p.mu.Lock()
	if p.retired || len(p.idle) >= idleLimit {
		p.mu.Unlock()
		u.close()
		return
	}
	u.idleAt = now
	p.idle = append(p.idle, u)
	if p.timer == nil {
		p.timer = time.AfterFunc(idlePurgeEvery, p.sweep)
	}
	p.mu.Unlock()
}

// sweep runs every idlePurgeEvery while connections are idle. It closes
// those idle for idleConnTimeout, and half of those left unused for a
// whole period, as HAProxy's pool-purge-delay does: the pool shrinks to
// what the traffic uses soon after a burst, without closing at once
// everything a lull left unused. The oldest are first, and those are the
// unused ones: get takes the newest.
func (p *upPool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	expired, unused := 0, 0
	for _, u := range p.idle {
		age := now.Sub(u.idleAt)
		if age < idlePurgeEvery {
			break // and so are all that follow
		}
		if age >= idleConnTimeout {
			expired++
		} else {
			unused++
		}
	}
	n := expired + unused/2
	for _, u := range p.idle[:n] {
		u.close()
	}
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	if len(p.idle) == 0 {
		p.timer = nil
		return
	}
	p.timer = time.AfterFunc(idlePurgeEvery, p.sweep)
}

// closeIdle closes every idle connection.
func (p *upPool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.idle {
		u.close()
	}
	clear(p.idle)
	p.idle = p.idle[:0]
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// retire closes the idle connections and keeps none from now on.
func (p *upPool) retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
	p.closeIdle()
}

// dial opens a new connection to ep, giving up at deadline or after the
// connect timeout.
func (p *upPool) dial(ep *endpoint, connect time.Duration, deadline time.Time) (*upConn, error) {
	p.mu.Lock()
	if p.addr == "" {
		p.addr = dialAddr(ep)
	}
	addr := p.addr
	p.mu.Unlock()
	d := net.Dialer{Timeout: connect, Deadline: deadline, KeepAlive: tcpKeepAlive}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return newUpConn(c), nil
}

// dialAddr is the host:port of an http endpoint.
func dialAddr(ep *endpoint) string {
	if ep.url.Port() != "" {
		return ep.url.Host
	}
	return net.JoinHostPort(ep.url.Hostname(), "80")
}
