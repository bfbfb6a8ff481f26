package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// forward steers one request on the fast path, the way ServeHTTP does:
// the same decision, endpoint choice, retries, failover, passive health
// reports and accounting (finish), over pooled upstream connections.
func (fc *fconn) forward(tab *table, svc *service, n int) action {
	p := fc.fs.p
	ex := p.pool.Get().(*exchange)
	ex.p, ex.tab, ex.svc = p, tab, svc
	ex.start = p.now()
	svc.st.load.active.Add(1)
	finished := false
	defer func() {
		if !finished { // a panic
			p.finish(ex)
		}
	}()
	act := fc.exchange(ex, n)
	// Accounted before the last bytes leave, as on the net/http path,
	// where the server flushes once the handler is done.
	finished = true
	p.finish(ex)
	if err := fc.bw.Flush(); err != nil {
		return doClose
	}
	return act
}

// exchange runs the request of an exchange up to its last response bytes,
// which it leaves buffered.
func (fc *fconn) exchange(ex *exchange, n int) action {
	rq, svc := &fc.rq, ex.svc
	whole := time.Now().Add(svc.timeout)

	ex.trusted = svc.trusts(fc.peer)
	ex.idem = rq.Method.Idempotent() || rq.IdemKey
	ex.write = svc.isWriteBytes(rq.MethodName)
	ex.client = fc.peer
	if ex.trusted && rq.XFF {
		var vals [4]string
		ex.client = svc.clientFromXFF(fc.peer, rq.Values(vals[:0], h1.KindXFF))
	}
	ex.decide(nil) // sticky cookies never take the fast path
	closing := rq.Conn.Close
	if !ex.d.NoData {
		if ex.d.FailOpen && svc.failOpen != nil {
			svc.failOpen.Inc()
		}
		ex.ep = ex.next()
	}
	if ex.write && (ex.d.NoData || ex.all) {
		return fc.unavailable(ex, n, closing || rq.CLen > 0)
	}
	if ex.d.NoData || ex.ep == nil {
		msg := "meridian: no endpoint may serve this request\n"
		if ex.d.NoData {
			msg = "meridian: no region may serve this request\n"
		}
		ex.code = http.StatusServiceUnavailable
		fc.in.consume(n)
		closing = closing || rq.CLen > 0 // the body was not read
		if err := fc.writePlain(ex.code, []byte(msg), nil, closing); err != nil || closing {
			return doClose
		}
		return doNext
	}

	// The request for the upstream, then its body after it: the head's
	// bytes in the client buffer are done with once it is built.
	m, clen := rq.Method, rq.CLen
	fc.target = append(fc.target[:0], rq.Target...)
	fc.wire = fc.appendRequest(fc.wire[:0], ex, rq)
	line := bytes.IndexByte(fc.wire, '\n') + 1
	fc.in.consume(n)
	if clen > 0 {
		if code, msg := fc.readBody(clen, whole); code != 0 {
			ex.code = code
			_ = fc.writePlain(code, []byte(msg), nil, true) // closing anyway
			return doClose
		}
		ex.hasBody = true
		ex.replay = fc.wire[len(fc.wire)-int(clen):]
	}
	_ = fc.c.SetWriteDeadline(whole) // failing, the writes fail too

	var (
		u   *upConn
		err error
	)
	for {
		ex.attempts++
		u, err = fc.roundTrip(ex, whole)
		var f failure
		var reason string
		switch {
		case err == nil:
			f, reason = ex.judgeStatus(fc.rs.Code)
		case err == errClientGone:
			f = failGone // no fault of the upstream's: nothing to report
		case !time.Now().Before(whole):
			ex.report(health.OutcomeTimeout)
			f = failGone
		default:
			f, reason = ex.judgeError(err)
		}
		prev := ex.ep
		if !ex.advance(f, reason) {
			break
		}
		if u != nil {
			fc.dropResponse(prev, u, m == h1.MethodHead)
		}
		if !plainBase(prev) || !plainBase(ex.ep) {
			line = fc.retarget(ex, m, line, clen)
		}
	}
	if err == nil && fc.rs.Code == http.StatusSwitchingProtocols {
		u.close()
		err = errSwitchRefused
	}
	if err != nil {
		return fc.failed(ex, err, whole, closing)
	}
	return fc.respond(ex, u, m == h1.MethodHead, whole, closing)
}

// readBody appends the request body to the wire. On failure it returns the
// status and message ServeHTTP answers with.
func (fc *fconn) readBody(clen int64, whole time.Time) (int, string) {
	b := fc.in.buffered()
	if int64(len(b)) > clen {
		b = b[:clen]
	}
	fc.wire = append(fc.wire, b...)
	fc.in.consume(len(b))
	rest := int(clen) - len(b)
	if rest == 0 {
		return 0, ""
	}
	start := len(fc.wire)
	fc.wire = slices.Grow(fc.wire, rest)[:start+rest]
	// A client may not dribble its body for longer than the request may
	// take, as on the net/http path.
	_ = fc.c.SetReadDeadline(whole) // failing, the read fails too
	if _, err := io.ReadFull(fc.src(), fc.wire[start:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return http.StatusRequestTimeout, "meridian: request body too slow\n"
		}
		return http.StatusBadRequest, "meridian: reading request body failed\n"
	}
	return 0, ""
}

// plainBase reports whether an endpoint takes the client's target as it is.
func plainBase(ep *endpoint) bool {
	return (ep.url.Path == "" || ep.url.Path == "/") && ep.url.RawQuery == ""
}

// retarget rewrites the request line of the wire for the exchange's
// current endpoint; it returns the new line's length.
func (fc *fconn) retarget(ex *exchange, m h1.Method, line int, clen int64) int {
	b := append(fc.scratch[:0], m.Name()...)
	b = append(b, ' ')
	b = appendTarget(b, ex, fc.target)
	b = append(b, " HTTP/1.1\r\n"...)
	newLine := len(b)
	b = append(b, fc.wire[line:]...)
	fc.scratch, fc.wire = fc.wire, b
	if clen > 0 {
		ex.replay = fc.wire[len(fc.wire)-int(clen):]
	}
	return newLine
}

// roundTrip sends the request to the exchange's endpoint and reads the
// response head into fc.rs, relaying 1xx responses to the client.
//
// A pooled connection carries the request only when it is known to be
// clean: nothing unread, not closed by the upstream. One that fails the
// check is closed, and the request goes on another. A pooled connection
// that fails before any answer, or answers 408 (an upstream closing an
// idle connection on its keep-alive timeout says so), was most likely
// closed by the upstream meanwhile: the request goes again on a new one
// when the upstream cannot have processed it (not sent in full, a 408, or
// idempotent).
func (fc *fconn) roundTrip(ex *exchange, whole time.Time) (*upConn, error) {
	ep, now := ex.ep, time.Now()
	deadline := whole
	if h := ex.svc.st.key.header; h > 0 {
		if d := now.Add(h); d.Before(deadline) {
			deadline = d
		}
	}
	u := ep.st.fast.get(now)
	for u != nil && !u.clean() {
		u.close()
		u = ep.st.fast.get(now)
	}
	for {
		fresh := u == nil
		if fresh {
			var err error
			if u, err = ep.st.fast.dial(ep, ex.svc.st.key.connect, whole); err != nil {
				return nil, err
			}
		}
		err := fc.exchangeHead(u, deadline, now)
		if err == nil && (fresh || fc.rs.Code != http.StatusRequestTimeout) {
			return u, nil
		}
		stale := !fresh && (err == nil ||
			fc.nread == 0 && (ex.idem || !fc.sent) && !isTimeout(err) && err != errClientGone)
		u.close()
		u = nil
		if !stale {
			return nil, err
		}
	}
}

// exchangeHead writes the wire to u and reads the final response head; now
// is when the attempt began.
func (fc *fconn) exchangeHead(u *upConn, deadline, now time.Time) error {
	fc.nread, fc.sent = 0, false
	if err := u.c.SetDeadline(deadline); err != nil {
		return err
	}
	fc.upRead = deadline
	if w := fc.nextCheck(deadline, now); w.Before(deadline) {
		if err := u.c.SetReadDeadline(w); err != nil {
			return err
		}
		fc.upRead = w
	}
	sent, k, err := u.send(fc.wire, fc.upRead)
	fc.sent, fc.nread = sent, k
	if k == 0 {
		if !sent {
			return err
		}
		if err = fc.keepWaiting(u, err, deadline); err != nil {
			return eofIsUnexpected(err)
		}
	}
	for informational := 0; ; informational++ {
		if err := fc.readResponseHead(u, deadline); err != nil {
			return err
		}
		if fc.rs.Code >= 200 || fc.rs.Code == http.StatusSwitchingProtocols {
			return nil
		}
		if informational == 5 {
			return errTooMany1xx
		}
		fc.scratch = fc.rs.AppendInformational(fc.scratch[:0])
		u.in.consume(fc.rs.Size)
		if _, err := fc.bw.Write(fc.scratch); err == nil {
			_ = fc.bw.Flush() // a client gone shows when the response is written
		}
	}
}

// clientCheckEvery is how often a request that waits for an upstream's
// answer looks whether its client is still there.
const clientCheckEvery = time.Second

// nextCheck is the read deadline for a wait on the upstream that must end
// at deadline: the next look at the client, when one can be taken.
func (fc *fconn) nextCheck(deadline, now time.Time) time.Time {
	if fc.tcp == nil {
		return deadline // no socket to peek at
	}
	if c := now.Add(clientCheckEvery); c.Before(deadline) {
		return c
	}
	return deadline
}

// keepWaiting decides after a failed read of the response head: a read
// that ran into a client check before the deadline goes on while the
// client is there (nil) and ends with errClientGone when it is not, as
// net/http cancels a request whose client closed. Any other error is
// returned as it is.
func (fc *fconn) keepWaiting(u *upConn, err error, deadline time.Time) error {
	now := time.Now()
	if !isTimeout(err) || !now.Before(deadline) {
		return err
	}
	if fc.clientGone() {
		return errClientGone
	}
	fc.upRead = fc.nextCheck(deadline, now)
	return u.c.SetReadDeadline(fc.upRead)
}

// clientGone reports whether the client closed or reset its connection,
// peeking without reading (pipelined bytes stay where they are). Under
// TLS, a client that closed with a close_notify alert left that alert to
// peek at, and looks present until its response is written.
func (fc *fconn) clientGone() bool {
	gone := false
	err := fc.tcp.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = n == 0 && err == nil || err != nil && err != unix.EAGAIN && err != unix.EINTR
	})
	return gone || err != nil
}

// readResponseHead reads and parses one response head, which stays in the
// buffer; deadline is the end of the wait for it.
func (fc *fconn) readResponseHead(u *upConn, deadline time.Time) error {
	for from := 0; ; {
		b := u.in.buffered()
		if n := h1.HeadEnd(b, from); n >= 0 {
			return fc.parseResponse(b[:n])
		}
		from = len(b)
		k, err := u.in.fill(u.src(), true)
		fc.nread += k
		if err == errBufferFull {
			if !u.in.grow(maxResponseHead) {
				return errHeadTooLarge
			}
			continue
		}
		if k == 0 {
			if err = fc.keepWaiting(u, err, deadline); err != nil {
				return eofIsUnexpected(err)
			}
		}
	}
}

// dropResponse discards a response that is retried: its connection goes
// back to the pool when the whole body is already buffered.
func (fc *fconn) dropResponse(ep *endpoint, u *upConn, head bool) {
	rs := &fc.rs
	m := rs.Mode(head)
	body := int64(len(u.in.buffered()) - rs.Size)
	if rs.Reusable(m) && (m == h1.BodyNone && body == 0 || m == h1.BodyLength && body == rs.CLen) {
		u.in.consume(rs.Size + int(body))
		ep.st.fast.put(u, time.Now())
		return
	}
	u.close()
}

// failed answers a request no upstream answered, as errorHandler does.
func (fc *fconn) failed(ex *exchange, err error, whole time.Time, closing bool) action {
	if err == errClientGone {
		ex.code = statusClientClosed // counted, never sent
		return doClose
	}
	code, msg := http.StatusBadGateway, "meridian: no upstream could answer\n"
	if !time.Now().Before(whole) || isTimeout(err) {
		code, msg = http.StatusGatewayTimeout, "meridian: upstream timed out\n"
	} else if ex.write && ex.lastFail == failConnect {
		return fc.unavailable(ex, 0, closing)
	}
	ex.code = code
	fc.fs.p.log.Debug("no upstream answered", "service", ex.svc.name, "region", ex.ep.region.name,
		"attempts", ex.attempts, "err", err)
	if err := fc.writePlain(code, []byte(msg), ex.ep.region, closing); err != nil || closing {
		return doClose
	}
	return doNext
}

// respond relays the response whose head is in fc.rs to the client.
func (fc *fconn) respond(ex *exchange, u *upConn, head bool, whole time.Time, closing bool) action {
	rs := &fc.rs
	ex.code = rs.Code
	m := rs.Mode(head)
	if rs.Stream {
		// Streams live as long as both sides want: the timeout covered
		// the wait for the head only.
		_ = u.c.SetReadDeadline(time.Time{})
		_ = fc.c.SetWriteDeadline(time.Time{})
	} else if body := int64(len(u.in.buffered()) - rs.Size); !fc.upRead.Equal(whole) &&
		m != h1.BodyNone && (m != h1.BodyLength || body < rs.CLen) {
		// The body is still to come and may take the rest of the time:
		// the head's wait ended earlier (a header timeout, or the next
		// look at the client).
		_ = u.c.SetReadDeadline(whole)
	}
	closing = closing || fc.fs.shutting.Load()
	fc.scratch = rs.AppendHead(fc.scratch[:0], m, ex.ep.region.name, fc.sniff(u, m), closing)
	u.in.consume(rs.Size)
	keep := rs.Reusable(m)
	_, err := fc.bw.Write(fc.scratch)
	if err == nil {
		switch m {
		case h1.BodyLength:
			err = fc.relayLength(u, rs.CLen, rs.Stream)
		case h1.BodyChunked:
			err = fc.relayChunked(u)
		case h1.BodyClose:
			err = fc.relayUntilClose(u)
		}
	}
	if err != nil {
		// What the client has not been sent of a response that broke
		// off is dropped, as net/http's server drops it when a handler
		// aborts: a response cut short early reaches the client as none.
		fc.discardOutput()
	}
	if err != nil || !keep || len(u.in.buffered()) > 0 {
		u.close()
	} else {
		ex.ep.st.fast.put(u, time.Now())
	}
	if err != nil || closing {
		return doClose
	}
	return doNext
}

// sniff returns the first body bytes from which net/http's server would
// detect a Content-Type the upstream did not send: nil when it sent one,
// or an encoding, or the body is not at hand without waiting on a full
// buffer.
func (fc *fconn) sniff(u *upConn, m h1.BodyMode) []byte {
	rs := &fc.rs
	if rs.CType || rs.CEnc || m != h1.BodyLength && m != h1.BodyClose {
		return nil
	}
	if len(u.in.buffered()) == rs.Size {
		fc.nread = 0
		_, _ = u.in.fill(u.src(), false) // an error shows again when the body is relayed
	}
	body := u.in.buffered()[rs.Size:]
	if m == h1.BodyLength && int64(len(body)) > rs.CLen {
		body = body[:rs.CLen]
	}
	return body[:min(len(body), 512)]
}
