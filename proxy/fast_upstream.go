package proxy

import (
	"errors"
	"net"
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
func (in *inbuf) fill(c net.Conn, compact bool) (int, error) {
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
}

var upBufs = sync.Pool{New: func() any { return new([upstreamBufSize]byte) }}

func newUpConn(c net.Conn) *upConn {
	return &upConn{c: c, in: inbuf{b: upBufs.Get().(*[upstreamBufSize]byte)[:]}}
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
	timer   *time.Timer // closes connections idle past idleConnTimeout
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
	if p.retired || len(p.idle) >= maxIdlePerHost {
		p.mu.Unlock()
		u.close()
		return
	}
	u.idleAt = now
	p.idle = append(p.idle, u)
	if p.timer == nil {
		p.timer = time.AfterFunc(idleConnTimeout, p.sweep)
	}
	p.mu.Unlock()
}

// sweep closes the connections idle for idleConnTimeout (the oldest are
// first) and runs again while any is left.
func (p *upPool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleAt) >= idleConnTimeout {
		p.idle[n].close()
		n++
	}
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	if len(p.idle) == 0 {
		p.timer = nil
		return
	}
	p.timer = time.AfterFunc(idleConnTimeout-now.Sub(p.idle[0].idleAt), p.sweep)
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
