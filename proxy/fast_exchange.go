package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
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
		fc.in.Consume(n)
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
	fc.in.Consume(n)
	if clen > 0 {
		if code, msg := fc.readBody(clen, whole); code != 0 {
			ex.code = code
			_ = fc.writePlain(code, []byte(msg), nil, true) // closing anyway
			return doClose
		}
		ex.hasBody = true
		ex.replay = fc.wire[len(fc.wire)-int(clen):]
	}
	_ = fc.C.SetWriteDeadline(whole) // failing, the writes fail too

	u, err := ex.roundTrips(&fc.trip, &fc.wire, whole, m == h1.MethodHead, func() {
		line = fc.retarget(ex, m, line, clen)
	})
	if err != nil {
		return fc.failed(ex, err, whole, closing)
	}
	return fc.respond(ex, u, m == h1.MethodHead, whole, closing)
}

// readBody appends the request body to the wire. On failure it returns the
// status and message ServeHTTP answers with.
func (fc *fconn) readBody(clen int64, whole time.Time) (int, string) {
	b := fc.in.Buffered()
	if int64(len(b)) > clen {
		b = b[:clen]
	}
	fc.wire = append(fc.wire, b...)
	fc.in.Consume(len(b))
	rest := int(clen) - len(b)
	if rest == 0 {
		return 0, ""
	}
	start := len(fc.wire)
	fc.wire = slices.Grow(fc.wire, rest)[:start+rest]
	// A client may not dribble its body for longer than the request may
	// take, as on the net/http path.
	_ = fc.C.SetReadDeadline(whole) // failing, the read fails too
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

// failed answers a request no upstream answered, as errorHandler does.
func (fc *fconn) failed(ex *exchange, err error, whole time.Time, closing bool) action {
	if err == fastpath.ErrClientGone {
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

// respond relays the response whose head is in fc.trip.Resp to the client.
func (fc *fconn) respond(ex *exchange, u *fastpath.UpConn, head bool, whole time.Time, closing bool) action {
	rs := &fc.trip.Resp
	ex.code = rs.Code
	m := rs.Mode(head)
	deadline := whole
	if rs.Stream {
		// Streams live as long as both sides want: the timeout covered
		// the wait for the head only.
		deadline = time.Time{}
		_ = fc.trip.SetReadDeadline(u, deadline)
		_ = fc.C.SetWriteDeadline(time.Time{})
	} else if body := int64(len(u.In.Buffered()) - rs.Size); !fc.trip.ReadDeadline().Equal(whole) &&
		m != h1.BodyNone && (m != h1.BodyLength || body < rs.CLen) {
		// The body is still to come and may take the rest of the time:
		// the head's wait ended earlier (a header timeout, or the next
		// look at the client).
		_ = fc.trip.SetReadDeadline(u, whole)
	}
	closing = closing || fc.fs.eng.Shutting()
	fc.scratch = rs.AppendHead(fc.scratch[:0], m, ex.ep.region.name, fc.trip.Sniff(u, m, deadline), closing)
	u.In.Consume(rs.Size)
	keep := rs.Reusable(m)
	_, err := fc.bw.Write(fc.scratch)
	if err == nil {
		err = fc.trip.Relay(u, m, deadline)
	}
	if err == nil && m == h1.BodyChunked {
		err = fc.relayTrailers(u, deadline)
	}
	if err != nil {
		// What the client has not been sent of a response that broke
		// off is dropped, as net/http's server drops it when a handler
		// aborts: a response cut short early reaches the client as none.
		fc.discardOutput()
	}
	if err != nil || !keep || len(u.In.Buffered()) > 0 {
		u.Close()
	} else {
		ex.ep.st.fast.Put(u, time.Now())
	}
	if err != nil || closing {
		return doClose
	}
	return doNext
}

// roundTrips sends the request over t to the exchange's endpoint, and
// again to the next one while ex.advance decides to retry, as ServeHTTP's
// retrier does; it returns the final response's connection (its head in
// t.Resp) or the last attempt's error. wire is the request as sent
// upstream, which retarget rewrites when a retry moves it to an endpoint
// with another base path or query. head tells a HEAD request.
func (ex *exchange) roundTrips(t *fastpath.Trip, wire *[]byte, whole time.Time, head bool, retarget func()) (*fastpath.UpConn, error) {
	var (
		u   *fastpath.UpConn
		err error
	)
	for {
		ex.attempts++
		u, err = t.RoundTrip(upstreamOf(ex), *wire, whole, ex.idem)
		var f failure
		var reason string
		switch {
		case err == nil:
			f, reason = ex.judgeStatus(t.Resp.Code)
		case err == fastpath.ErrClientGone || ex.stream != nil && ex.stream.broken.Load():
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
			t.Drop(&prev.st.fast, u, head)
		}
		if !plainBase(prev) || !plainBase(ex.ep) {
			retarget()
		}
	}
	if err == nil && t.Resp.Code == http.StatusSwitchingProtocols {
		u.Close()
		err = fastpath.ErrSwitchRefused
	}
	return u, err
}

// upstreamOf is where the exchange's current attempt goes.
func upstreamOf(ex *exchange) fastpath.Upstream {
	return fastpath.Upstream{Pool: &ex.ep.st.fast, URL: ex.ep.url, Connect: ex.svc.st.key.connect, Header: ex.svc.st.key.header}
}

// inform relays the informational response head the upstream sent.
func (fc *fconn) inform() {
	fc.scratch = fc.trip.Resp.AppendInformational(fc.scratch[:0])
	if _, err := fc.bw.Write(fc.scratch); err == nil {
		_ = fc.bw.Flush() // a client gone shows when the response is written
	}
}
