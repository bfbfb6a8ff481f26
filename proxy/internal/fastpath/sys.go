package fastpath

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fast path's reads and writes are on non-blocking sockets: they
// return at once, with EAGAIN when there is nothing to read or no room to
// write, and never sleep in the kernel. They are made as raw system calls,
// which do not tell the scheduler that the goroutine entered the kernel.
//
// A system call the scheduler knows about marks its P as in a system call,
// and the runtime's monitor hands a P found there on two of its looks
// (20 µs apart while it is busy) to another thread. With one P on one core,
// as an edge node is run pinned, a loopback write that takes that long
// hands the P over, and the thread that made the call waits to get it
// back: two thread switches in the middle of a batch of requests, which
// lengthen the latency tail. A raw call keeps the P.

// readFD reads from a non-blocking descriptor, again when a signal
// interrupted the read.
func readFD(fd uintptr, b []byte) (int, error) {
	return rawIO(unix.SYS_READ, fd, b)
}

// writeFD writes to a non-blocking descriptor, again when a signal
// interrupted the write.
func writeFD(fd uintptr, b []byte) (int, error) {
	return rawIO(unix.SYS_WRITE, fd, b)
}

// rawIO makes read(2) or write(2) on b (with no buffer when b is empty).
func rawIO(trap, fd uintptr, b []byte) (int, error) {
	p := unsafe.Pointer(unsafe.SliceData(b)) //nolint:gosec // G103: the system call's buffer
	for {
		n, _, e := unix.RawSyscall(trap, fd, uintptr(p), uintptr(len(b)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return -1, unix.EAGAIN
		}
		return -1, e
	}
}

// sockOp is the state of one read or write of a socket, made by step in a
// raw read or write of rc: it waits in the runtime's poller, under the
// socket's deadline, only when the socket is not ready.
type sockOp struct {
	c    net.Conn // the socket's connection
	rc   syscall.RawConn
	step func(fd uintptr) bool // the reader's or writer's, bound once
	b    []byte
	n    int
	err  error
}

// reset makes the read or write use c through rc (nil, nil: none).
func (s *sockOp) reset(c net.Conn, rc syscall.RawConn) { s.c, s.rc = c, rc }

// active reports whether there is a socket to use.
func (s *sockOp) active() bool { return s.rc != nil }

// fail keeps a failed system call's error as net.Conn reports one.
func (s *sockOp) fail(op string, err error) {
	s.err = &net.OpError{Op: op, Net: "tcp", Addr: s.c.RemoteAddr(), Err: os.NewSyscallError(op, err)}
}

// sockWriter writes to a socket with raw writes. It is the client writer
// of cleartext connections.
type sockWriter struct{ sockOp }

func (w *sockWriter) Write(b []byte) (int, error) {
	w.b, w.n, w.err = b, 0, nil
	err := w.rc.Write(w.step)
	w.b = nil
	if err == nil {
		err = w.err
	}
	return w.n, err
}

// ReadFrom copies with the connection's own ReadFrom, which splices
// between TCP sockets: a large body does not pass through user space.
func (w *sockWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.c.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// writable writes what is left; false waits for room.
func (w *sockWriter) writable(fd uintptr) bool {
	for w.n < len(w.b) {
		n, err := writeFD(fd, w.b[w.n:])
		switch {
		case err == unix.EAGAIN:
			return false
		case err != nil:
			w.fail("write", err)
			return true
		}
		w.n += n
	}
	return true
}

// sockReader reads from a socket with raw reads. It is what the fast path
// reads through outside its raw-read callbacks, on sockets it has the
// descriptor of.
type sockReader struct{ sockOp }

func (r *sockReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.b, r.n, r.err = b, 0, nil
	err := r.rc.Read(r.step)
	r.b = nil
	if err != nil {
		return 0, err
	}
	return r.n, r.err
}

// readable reads once; false waits for bytes.
func (r *sockReader) readable(fd uintptr) bool {
	n, err := readFD(fd, r.b)
	switch {
	case err == unix.EAGAIN:
		return false
	case err != nil:
		r.fail("read", err)
	case n == 0:
		r.err = io.EOF
	default:
		r.n = n
	}
	return true
}
