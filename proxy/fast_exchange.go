package proxy

import (
	"bytes"
	"net/http"
	"net/netip"
	"time"

	"github.com/meridian-edge/meridian/health"
	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// forward steers one request on the fast path, the way ServeHTTP does:
// the same decision, endpoint choice, retries, failover, passive health
// reports and accounting (finish), over pooled upstream connections.
func (fs *fastServer) forward(fc *fastpath.Conn, tab *table, svc *service, n int) fastpath.Action {
	p := fs.p
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
	act := fs.exchange(fc, ex, n)
	// Accounted before the last bytes leave, as on the net/http path,
	// where the server flushes once the handler is done.
	finished = true
	p.finish(ex)
	if err := fc.BW.Flush(); err != nil {
		return fastpath.DoClose
	}
	return act
}

// exchange runs the request of an exchange up to its last response bytes,
// which it leaves buffered.
func (fs *fastServer) exchange(fc *fastpath.Conn, ex *exchange, n int) fastpath.Action {
	rq, svc := &fc.Rq, ex.svc
	whole := time.Now().Add(svc.timeout)

	if ex.note(fc.Peer, rq.Method.Idempotent() || rq.IdemKey, rq.MethodName) && rq.XFF {
		var vals [4]string
		ex.client = svc.clientFromXFF(fc.Peer, rq.Values(vals[:0], h1.KindXFF))
	}
	ex.begin() // sticky cookies never take the fast path
	closing := rq.Conn.Close
	if ex.write && (ex.d.NoData || ex.all) {
		return fs.unavailable(fc, ex, n, closing || rq.CLen > 0)
	}
	if ex.d.NoData || ex.ep == nil {
		msg := "meridian: no endpoint may serve this request\n"
		if ex.d.NoData {
			msg = "meridian: no region may serve this request\n"
		}
		ex.code = http.StatusServiceUnavailable
		fc.In.Consume(n)
		closing = closing || rq.CLen > 0 // the body was not read
		if err := fc.WritePlain(ex.code, []byte(msg), "", closing); err != nil || closing {
			return fastpath.DoClose
		}
		return fastpath.DoNext
	}

	// The request for the upstream, then its body after it: the head's
	// bytes in the client buffer are done with once it is built.
	m, clen := rq.Method, rq.CLen
	fc.Target = append(fc.Target[:0], rq.Target...)
	fc.Wire = appendRequest(fc.Wire[:0], fc, ex, rq)
	line := bytes.IndexByte(fc.Wire, '\n') + 1
	fc.In.Consume(n)
	if clen > 0 {
		if code, msg := fc.ReadBody(clen, whole); code != 0 {
			ex.code = code
			_ = fc.WritePlain(code, []byte(msg), "", true) // closing anyway
			return fastpath.DoClose
		}
		ex.hasBody = true
		ex.replay = fc.Wire[len(fc.Wire)-int(clen):]
	}
	_ = fc.C.SetWriteDeadline(whole) // failing, the writes fail too

	u, err := ex.roundTrips(&fc.Trip, &fc.Wire, whole, m == h1.MethodHead, func() {
		line = fs.retarget(fc, ex, m, line, clen)
	})
	if err != nil {
		return fs.failed(fc, ex, err, whole, closing)
	}
	return fs.respond(fc, ex, u, m == h1.MethodHead, whole, closing)
}

// plainBase reports whether an endpoint takes the client's target as it is.
func plainBase(ep *endpoint) bool {
	return (ep.url.Path == "" || ep.url.Path == "/") && ep.url.RawQuery == ""
}

// retarget rewrites the request line of the wire for the exchange's
// current endpoint; it returns the new line's length.
func (fs *fastServer) retarget(fc *fastpath.Conn, ex *exchange, m h1.Method, line int, clen int64) int {
	b := append(fc.Scratch[:0], m.Name()...)
	b = append(b, ' ')
	b = appendTarget(b, ex, fc.Target)
	b = append(b, " HTTP/1.1\r\n"...)
	newLine := len(b)
	b = append(b, fc.Wire[line:]...)
	fc.Scratch, fc.Wire = fc.Wire, b
	if clen > 0 {
		ex.replay = fc.Wire[len(fc.Wire)-int(clen):]
	}
	return newLine
}

// failed answers a request no upstream answered, as errorHandler does.
func (fs *fastServer) failed(fc *fastpath.Conn, ex *exchange, err error, whole time.Time, closing bool) fastpath.Action {
	if err == fastpath.ErrClientGone {
		ex.code = statusClientClosed // counted, never sent
		return fastpath.DoClose
	}
	code, msg := http.StatusBadGateway, "meridian: no upstream could answer\n"
	if !time.Now().Before(whole) || isTimeout(err) {
		code, msg = http.StatusGatewayTimeout, "meridian: upstream timed out\n"
	} else if ex.write && ex.lastFail == failConnect {
		return fs.unavailable(fc, ex, 0, closing)
	}
	ex.code = code
	fs.p.log.Debug("no upstream answered", "service", ex.svc.name, "region", ex.ep.region.name,
		"attempts", ex.attempts, "err", err)
	if err := fc.WritePlain(code, []byte(msg), ex.ep.region.name, closing); err != nil || closing {
		return fastpath.DoClose
	}
	return fastpath.DoNext
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

// respond relays the response whose head is in fc.Trip.Resp to the
// client.
func (fs *fastServer) respond(fc *fastpath.Conn, ex *exchange, u *fastpath.UpConn, head bool, whole time.Time, closing bool) fastpath.Action {
	ex.code = fc.Trip.Resp.Code
	return fc.Respond(u, &ex.ep.st.fast, ex.ep.region.name, head, whole, closing)
}

// note records what the exchange needs of its request: the peer, whether
// the request may be repeated once it reached an upstream, and whether
// its method is a write. It reports whether the peer is a trusted proxy,
// whose X-Forwarded-For then names the client (ex.client).
func (ex *exchange) note(peer netip.Addr, idem bool, method []byte) (trusted bool) {
	svc := ex.svc
	ex.trusted = svc.trusts(peer)
	ex.idem = idem
	ex.write = svc.isWriteBytes(method)
	ex.client = peer
	return ex.trusted
}

// begin decides which regions may serve the request and picks its first
// endpoint, as ServeHTTP does for a request without a sticky cookie.
func (ex *exchange) begin() {
	ex.decide(nil)
	if !ex.d.NoData {
		if ex.d.FailOpen && ex.svc.failOpen != nil {
			ex.svc.failOpen.Inc()
		}
		ex.ep = ex.next()
	}
}
