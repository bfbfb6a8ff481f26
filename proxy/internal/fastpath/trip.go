package fastpath

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// Errors of a round trip.
var (
	errHeadTooLarge  = errors.New("proxy: response head from upstream too large")
	errTooMany1xx    = errors.New("proxy: too many 1xx responses from upstream")
	ErrSwitchRefused = errors.New("proxy: upstream switched protocols unasked")
	ErrClientGone    = errors.New("proxy: the client went away")
)

// ClientCheckEvery is how often a request that waits for an upstream's
// answer looks whether its client is still there.
const ClientCheckEvery = time.Second

// Trip is the upstream side of one request, for whichever client side
// relays the response (an HTTP/1.1 connection of the fast path, or a
// PlainResponse): it sends the request over a pooled connection of the
// endpoint, or a new one, and reads the response head, relaying 1xx
// responses through Inform. It is meant to be a field of a pooled
// per-connection or per-request object: nothing in it allocates per
// request.
type Trip struct {
	// Resp is the response head read last; its slices point into the
	// upstream's buffer (or into a plain rewrite of a head that bends
	// RFC 9112).
	Resp h1.Response
	// Client tells whether the client is still there.
	Client Client
	// Out is where Relay sends the response body.
	Out Sink
	// Inform sends the informational (1xx) head in Resp to the client and
	// flushes it; a client gone shows when the response is written. Bound
	// once by the owner.
	Inform func()
	// Stream, when set, writes the request head (the wire) and then a body
	// it reads from the client while it sends it, in place of a plain
	// write of the wire; it sets BodyRead once a byte of that body was
	// read, after which the request cannot go again.
	Stream   func(u *UpConn) error
	BodyRead bool

	rhead []byte    // a response head rewritten in plain form
	nread int       // response bytes read from the upstream in this attempt
	sent  bool      // the request was written upstream in this attempt
	read  time.Time // the read deadline last set on the upstream connection
}

// Client is how a round trip learns that its client went away while the
// upstream is still to answer: TCP is the client's socket, peeked at;
// Watch's Done channel is closed when the client left (asked each time: it
// may change). With neither it cannot know.
type Client struct {
	TCP   syscall.RawConn
	Watch interface{ Done() <-chan struct{} }
}

// Upstream is where an attempt goes: the endpoint's pool and URL, and the
// service's connect timeout and wait for a response head (0: none).
type Upstream struct {
	Pool    *Pool
	URL     *url.URL
	Connect time.Duration
	Header  time.Duration
}

// Release drops what a large response left behind, before the owner goes
// back to its pool.
func (t *Trip) Release() {
	if cap(t.rhead) > 64<<10 {
		t.rhead = nil
	}
	clear(t.Resp.Fields)
	t.Client = Client{}
	t.Out.P = nil
	t.Stream, t.BodyRead = nil, false
}

// ReadDeadline is the read deadline last set on the upstream connection.
func (t *Trip) ReadDeadline() time.Time { return t.read }

// SetReadDeadline sets the upstream connection's read deadline and notes
// it.
func (t *Trip) SetReadDeadline(u *UpConn, d time.Time) error {
	t.read = d
	return u.C.SetReadDeadline(d)
}

// RoundTrip sends wire to the endpoint and reads the response head into
// t.Resp, relaying 1xx responses to the client; whole is when the request
// must be done, idem whether it may be repeated once it reached an
// upstream.
//
// A pooled connection carries the request only when it is known to be
// clean: nothing unread, not closed by the upstream. One that fails the
// check is closed, and the request goes on another. A pooled connection
// that fails before any answer, or answers 408 (an upstream closing an
// idle connection on its keep-alive timeout says so), was most likely
// closed by the upstream meanwhile: the request goes again on a new one
// when the upstream cannot have processed it (not sent in full, a 408, or
// idempotent) and no byte of a streamed body was read.
func (t *Trip) RoundTrip(up Upstream, wire []byte, whole time.Time, idem bool) (*UpConn, error) {
	now := time.Now()
	deadline := whole
	if h := up.Header; h > 0 {
		if d := now.Add(h); d.Before(deadline) {
			deadline = d
		}
	}
	u := up.Pool.Get(now)
	for u != nil && !u.Clean() {
		u.Close()
		u = up.Pool.Get(now)
	}
	for {
		fresh := u == nil
		if fresh {
			var err error
			if u, err = up.Pool.Dial(up.URL, up.Connect, whole); err != nil {
				return nil, err
			}
		}
		err := t.exchangeHead(u, wire, deadline, whole, now)
		if err == nil && (fresh || t.Resp.Code != http.StatusRequestTimeout) {
			return u, nil
		}
		stale := !fresh && !t.BodyRead && (err == nil ||
			t.nread == 0 && (idem || !t.sent) && !isTimeout(err) && err != ErrClientGone)
		u.Close()
		u = nil
		if !stale {
			return nil, err
		}
	}
}

// exchangeHead writes the request to u and reads the final response head;
// now is when the attempt began.
func (t *Trip) exchangeHead(u *UpConn, wire []byte, deadline, whole, now time.Time) error {
	t.nread, t.sent = 0, false
	if err := u.C.SetDeadline(deadline); err != nil {
		return err
	}
	t.read = deadline
	if t.Stream != nil {
		// The body may take as long as the request may.
		if err := u.C.SetWriteDeadline(whole); err != nil {
			return err
		}
		if err := t.Stream(u); err != nil {
			return err
		}
		t.sent = true
		if err := t.SetReadDeadline(u, t.nextCheck(deadline, time.Now())); err != nil {
			return err
		}
	} else {
		if w := t.nextCheck(deadline, now); !w.Equal(deadline) {
			if err := t.SetReadDeadline(u, w); err != nil {
				return err
			}
		}
		sent, k, err := u.Send(wire, t.read)
		t.sent, t.nread = sent, k
		if k == 0 {
			if !sent {
				return err
			}
			if err = t.keepWaiting(u, err, deadline); err != nil {
				return UnexpectedEOF(err)
			}
		}
	}
	for informational := 0; ; informational++ {
		if err := t.readResponseHead(u, deadline); err != nil {
			return err
		}
		if t.Resp.Code >= 200 || t.Resp.Code == http.StatusSwitchingProtocols {
			return nil
		}
		if informational == 5 {
			return errTooMany1xx
		}
		t.Inform()
		u.In.Consume(t.Resp.Size)
	}
}

// readResponseHead reads and parses one response head, which stays in the
// buffer; deadline is the end of the wait for it.
func (t *Trip) readResponseHead(u *UpConn, deadline time.Time) error {
	for from := 0; ; {
		b := u.In.Buffered()
		if n := h1.HeadEnd(b, from); n >= 0 {
			return h1.ParseResponse(&t.Resp, &t.rhead, b[:n])
		}
		from = len(b)
		err := t.Fill(u, deadline)
		if err == errBufferFull {
			if !u.In.Grow(maxResponseHead) {
				return errHeadTooLarge
			}
			continue
		}
		if err != nil {
			return UnexpectedEOF(err)
		}
	}
}

// nextCheck is the read deadline for a wait on the upstream that must end
// at deadline (zero: none): the next look at the client, when one can be
// taken.
func (t *Trip) nextCheck(deadline, now time.Time) time.Time {
	if t.Client.TCP == nil && (t.Client.Watch == nil || t.Client.Watch.Done() == nil) {
		return deadline // no way to know
	}
	if c := now.Add(ClientCheckEvery); deadline.IsZero() || c.Before(deadline) {
		return c
	}
	return deadline
}

// keepWaiting decides after a failed read from the upstream: a read that
// ran into a look at the client before deadline (zero: none) goes on while
// the client is there (nil) and ends with ErrClientGone when it is not, as
// net/http cancels a request whose client closed. Any other error is
// returned as it is.
func (t *Trip) keepWaiting(u *UpConn, err error, deadline time.Time) error {
	now := time.Now()
	if !isTimeout(err) || !deadline.IsZero() && !now.Before(deadline) {
		return err
	}
	if t.ClientGone() {
		return ErrClientGone
	}
	if t.read.Equal(deadline) {
		return err
	}
	return t.SetReadDeadline(u, t.nextCheck(deadline, now))
}

// ClientGone reports whether the client went away. A socket is peeked at
// without reading (pipelined bytes stay where they are); under TLS, a
// client that closed with a close_notify alert left that alert to peek
// at, and looks present until its response is written.
func (t *Trip) ClientGone() bool {
	if rc := t.Client.TCP; rc != nil {
		gone := false
		err := rc.Control(func(fd uintptr) {
			var b [1]byte
			n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			gone = n == 0 && err == nil || err != nil && err != unix.EAGAIN && err != unix.EINTR
		})
		return gone || err != nil
	}
	if t.Client.Watch == nil {
		return false
	}
	select {
	case <-t.Client.Watch.Done():
		return true
	default:
		return false
	}
}

// Fill reads more of the upstream's answer into its buffer, looking at
// the client while it waits; deadline is the end of the wait (zero:
// none). It returns errBufferFull when the buffer has no room.
func (t *Trip) Fill(u *UpConn, deadline time.Time) error {
	for {
		k, err := u.In.Fill(u.Src(), true)
		t.nread += k
		switch {
		case k > 0:
			return nil // an error shows again on the next read
		case err == errBufferFull:
			return err
		}
		if err = t.keepWaiting(u, err, deadline); err != nil {
			return err
		}
	}
}

// Drop discards a response that is retried: its connection goes back to
// pool when the whole body is already buffered.
func (t *Trip) Drop(pool *Pool, u *UpConn, head bool) {
	rs := &t.Resp
	m := rs.Mode(head)
	body := int64(len(u.In.Buffered()) - rs.Size)
	if rs.Reusable(m) && (m == h1.BodyNone && body == 0 || m == h1.BodyLength && body == rs.CLen) {
		u.In.Consume(rs.Size + int(body))
		pool.Put(u, time.Now())
		return
	}
	u.Close()
}

// Sniff returns the first body bytes from which net/http's server would
// detect a Content-Type the upstream did not send: nil when it sent one,
// or an encoding. When none of the body is buffered it reads once (and
// on while the client is there, until deadline, zero: none).
func (t *Trip) Sniff(u *UpConn, m h1.BodyMode, deadline time.Time) []byte {
	rs := &t.Resp
	if rs.CType || rs.CEnc || m != h1.BodyLength && m != h1.BodyClose {
		return nil
	}
	if len(u.In.Buffered()) == rs.Size {
		for {
			k, err := u.In.Fill(u.Src(), false)
			if k > 0 || err == nil || t.keepWaiting(u, err, deadline) != nil {
				break // an error shows again when the body is relayed
			}
		}
	}
	body := u.In.Buffered()[rs.Size:]
	if m == h1.BodyLength && int64(len(body)) > rs.CLen {
		body = body[:rs.CLen]
	}
	return body[:min(len(body), 512)]
}

// UnexpectedEOF turns the end of a body that should have gone on into an
// error (and a read that returned nothing without error into one too).
func UnexpectedEOF(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// Watch sets u's read deadline for a wait that must end at deadline
// (zero: none): the next look at the client, when one can be taken.
func (t *Trip) Watch(u *UpConn, deadline time.Time) error {
	return t.SetReadDeadline(u, t.nextCheck(deadline, time.Now()))
}
