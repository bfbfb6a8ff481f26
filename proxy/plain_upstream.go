package proxy

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// The upstream side of ServePlain: fconn's roundTrip, exchangeHead and
// relays, for a client that is a PlainResponse rather than a socket. The
// rules are the same; the client's presence is learnt from its Done
// channel, looked at once a second while the upstream is to answer.

// roundTrip sends the request to the exchange's endpoint and reads the
// response head into pc.rs, relaying 1xx responses; a pooled connection
// found stale is replaced as fconn.roundTrip replaces it.
func (pc *plainConn) roundTrip(whole time.Time) (*upConn, error) {
	ex := pc.ex
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
		err := pc.exchangeHead(u, deadline, whole, now)
		if err == nil && (fresh || pc.rs.Code != http.StatusRequestTimeout) {
			return u, nil
		}
		stale := !fresh && pc.sb.read.Load() == 0 && (err == nil ||
			pc.nread == 0 && (ex.idem || !pc.sent) && !isTimeout(err) && err != errClientGone)
		u.close()
		u = nil
		if !stale {
			return nil, err
		}
	}
}

// exchangeHead writes the request to u and reads the final response head.
func (pc *plainConn) exchangeHead(u *upConn, deadline, whole, now time.Time) error {
	pc.nread, pc.sent = 0, false
	if err := u.c.SetDeadline(deadline); err != nil {
		return err
	}
	pc.upRead = deadline
	if pc.stream {
		// The body may take as long as the request may.
		if err := u.c.SetWriteDeadline(whole); err != nil {
			return err
		}
		if err := pc.sendStream(u); err != nil {
			return err
		}
		pc.upRead = pc.nextCheck(deadline, time.Now())
		if err := u.c.SetReadDeadline(pc.upRead); err != nil {
			return err
		}
	} else {
		pc.upRead = pc.nextCheck(deadline, now)
		if !pc.upRead.Equal(deadline) {
			if err := u.c.SetReadDeadline(pc.upRead); err != nil {
				return err
			}
		}
		sent, k, err := u.send(pc.wire, pc.upRead)
		pc.sent, pc.nread = sent, k
		if k == 0 {
			if !sent {
				return err
			}
			if err = pc.keepWaiting(u, err, deadline); err != nil {
				return eofIsUnexpected(err)
			}
		}
	}
	for informational := 0; ; informational++ {
		if err := pc.readResponseHead(u, deadline); err != nil {
			return err
		}
		if pc.rs.Code >= 200 || pc.rs.Code == http.StatusSwitchingProtocols {
			return nil
		}
		if informational == 5 {
			return errTooMany1xx
		}
		pc.fieldsFor(h1.BodyNone, nil, false)
		err := pc.w.WriteHead(pc.rs.Code, &pc.out)
		u.in.consume(pc.rs.Size)
		if err == nil {
			_ = pc.w.Flush() // a client gone shows when the response is written
		}
	}
}

// sendStream writes the request head and the body read so far, then the
// rest of the body as it comes from the client (chunked when its length
// is unknown). A client body that breaks
// off or is too slow is marked in pc.sb and ends the attempt.
func (pc *plainConn) sendStream(u *upConn) error {
	if _, err := u.c.Write(pc.wire); err != nil {
		return err
	}
	bp := copyBuffers.Get().(*[copyBufferSize]byte)
	defer copyBuffers.Put(bp)
	buf := bp[:]
	sent := int64(len(pc.body))
	for {
		room := buf[16 : len(buf)-2]
		if pc.clen >= 0 {
			if left := pc.clen - sent; left < int64(len(room)) {
				room = room[:left]
			}
		}
		var k int
		var err error
		if len(room) > 0 {
			k, err = pc.sb.Read(room)
		} else {
			err = io.EOF
		}
		if k > 0 {
			out := room[:k]
			if pc.clen < 0 {
				size := strconv.AppendInt(pc.sizeBuf[:0], int64(k), 16)
				size = append(size, '\r', '\n')
				start := 16 - len(size)
				copy(buf[start:], size)
				out = buf[start : 16+k+2]
				out[len(out)-2], out[len(out)-1] = '\r', '\n'
			}
			if _, werr := u.c.Write(out); werr != nil {
				return werr
			}
			sent += int64(k)
		}
		switch {
		case err == io.EOF:
			if pc.clen >= 0 && sent < pc.clen {
				pc.sb.broken.Store(true)
				return io.ErrUnexpectedEOF
			}
			if pc.clen < 0 {
				if _, err := io.WriteString(u.c, "0\r\n\r\n"); err != nil {
					return err
				}
			}
			pc.sent = true
			return nil
		case err != nil:
			pc.sb.slow.Store(bodyTooSlow(err))
			return err
		}
	}
}

// nextCheck is the read deadline for a wait on the upstream that must end
// at deadline (zero: none): the next look at the client, when it can be
// known to leave.
func (pc *plainConn) nextCheck(deadline, now time.Time) time.Time {
	if pc.w.Done() == nil {
		return deadline
	}
	if c := now.Add(clientCheckEvery); deadline.IsZero() || c.Before(deadline) {
		return c
	}
	return deadline
}

// clientGone reports whether the client went away.
func (pc *plainConn) clientGone() bool {
	select {
	case <-pc.w.Done():
		return true
	default:
		return false
	}
}

// keepWaiting decides after a failed read from the upstream, as
// fconn.keepWaiting does: a read that ran into a look at the client before
// deadline (zero: none) goes on while the client is there.
func (pc *plainConn) keepWaiting(u *upConn, err error, deadline time.Time) error {
	now := time.Now()
	if !isTimeout(err) || !deadline.IsZero() && !now.Before(deadline) {
		return err
	}
	if pc.clientGone() {
		return errClientGone
	}
	if pc.upRead.Equal(deadline) {
		return err
	}
	pc.upRead = pc.nextCheck(deadline, now)
	return u.c.SetReadDeadline(pc.upRead)
}

// fill reads more of the upstream's answer into its buffer, looking at the
// client while it waits; deadline is the end of the wait (zero: none).
func (pc *plainConn) fill(u *upConn, deadline time.Time) error {
	for {
		k, err := u.in.fill(u.src(), true)
		pc.nread += k
		switch {
		case k > 0:
			return nil // an error shows again on the next read
		case err == errBufferFull:
			return err
		}
		if err = pc.keepWaiting(u, err, deadline); err != nil {
			return err
		}
	}
}

// readResponseHead reads and parses one response head, which stays in the
// buffer.
func (pc *plainConn) readResponseHead(u *upConn, deadline time.Time) error {
	for from := 0; ; {
		b := u.in.buffered()
		if n := h1.HeadEnd(b, from); n >= 0 {
			return h1.ParseResponse(&pc.rs, &pc.rhead, b[:n])
		}
		from = len(b)
		err := pc.fill(u, deadline)
		if err == errBufferFull {
			if !u.in.grow(maxResponseHead) {
				return errHeadTooLarge
			}
			continue
		}
		if err != nil {
			return eofIsUnexpected(err)
		}
	}
}

// dropResponse discards a response that is retried: its connection goes
// back to the pool when the whole body is already buffered.
func (pc *plainConn) dropResponse(ep *endpoint, u *upConn) {
	rs := &pc.rs
	m := rs.Mode(pc.head)
	body := int64(len(u.in.buffered()) - rs.Size)
	if rs.Reusable(m) && (m == h1.BodyNone && body == 0 || m == h1.BodyLength && body == rs.CLen) {
		u.in.consume(rs.Size + int(body))
		ep.st.fast.put(u, time.Now())
		return
	}
	u.close()
}

// failed answers a request no upstream answered, as errorHandler does.
func (pc *plainConn) failed(err error, whole time.Time) {
	ex := pc.ex
	code, msg := http.StatusBadGateway, "meridian: no upstream could answer\n"
	switch {
	case pc.sb.slow.Load():
		code, msg = http.StatusRequestTimeout, "meridian: request body too slow\n"
	case pc.sb.broken.Load():
		code, msg = http.StatusBadRequest, "meridian: reading request body failed\n"
	case err == errClientGone || pc.clientGone():
		ex.code = statusClientClosed // counted, never sent
		return
	case !time.Now().Before(whole) || isTimeout(err):
		code, msg = http.StatusGatewayTimeout, "meridian: upstream timed out\n"
	case ex.write && ex.lastFail == failConnect:
		ex.code = http.StatusServiceUnavailable
		_ = pc.answer(ex.code, writeUnavailableMsg, ex.ep.region, true) // a failed write: the client left
		return
	}
	ex.code = code
	pc.p.log.Debug("no upstream answered", "service", ex.svc.name, "region", ex.ep.region.name,
		"attempts", ex.attempts, "err", err)
	_ = pc.answer(code, []byte(msg), ex.ep.region, false) // a failed write: the client left
}

// respond relays the response whose head is in pc.rs to the client.
func (pc *plainConn) respond(u *upConn, whole time.Time) {
	ex, rs := pc.ex, &pc.rs
	ex.code = rs.Code
	m := rs.Mode(pc.head)
	deadline := whole
	if rs.Stream {
		deadline = time.Time{} // streams live as long as both sides want
	}
	pc.upRead = pc.nextCheck(deadline, time.Now())
	_ = u.c.SetReadDeadline(pc.upRead) // failing, the reads fail too
	pc.fieldsFor(m, pc.sniff(u, m, deadline), true)
	u.in.consume(rs.Size)
	keep := rs.Reusable(m)
	err := pc.w.WriteHead(rs.Code, &pc.out)
	if err == nil {
		switch m {
		case h1.BodyLength:
			err = pc.relayLength(u, rs.CLen, deadline)
		case h1.BodyChunked:
			err = pc.relayChunked(u, deadline)
		case h1.BodyClose:
			err = pc.relayUntilClose(u, deadline)
		}
	}
	if err != nil {
		pc.w.Abort()
	}
	if err != nil || !keep || len(u.in.buffered()) > 0 {
		u.close()
		return
	}
	ex.ep.st.fast.put(u, time.Now())
}

// sniff returns the first body bytes from which a Content-Type is
// detected for a response that has none, as fconn.sniff does.
func (pc *plainConn) sniff(u *upConn, m h1.BodyMode, deadline time.Time) []byte {
	rs := &pc.rs
	if rs.CType || rs.CEnc || m != h1.BodyLength && m != h1.BodyClose {
		return nil
	}
	if len(u.in.buffered()) == rs.Size {
		for {
			k, err := u.in.fill(u.src(), false)
			if k > 0 || err == nil || pc.keepWaiting(u, err, deadline) != nil {
				break // an error shows again when the body is relayed
			}
		}
	}
	body := u.in.buffered()[rs.Size:]
	if m == h1.BodyLength && int64(len(body)) > rs.CLen {
		body = body[:rs.CLen]
	}
	return body[:min(len(body), 512)]
}

// fieldsFor fills pc.out with the response's fields for the client, the
// way h1.Response.AppendHead selects them, names in lower case: final is
// false for a 1xx head, which gets no fields added.
func (pc *plainConn) fieldsFor(m h1.BodyMode, sniff []byte, final bool) {
	rs, ex := &pc.rs, pc.ex
	pc.out.f = pc.out.f[:0]
	for i := range rs.Fields {
		f := &rs.Fields[i]
		switch f.Kind {
		case h1.KindTransferEncoding, h1.KindContentLength:
			continue
		case h1.KindConnection, h1.KindHop, h1.KindTe, h1.KindUpgrade, h1.KindRegion:
			continue // HTTP/2 has no connection-specific fields, 1xx heads included
		case h1.KindTrailer:
			if final && m != h1.BodyChunked {
				continue
			}
		case h1.KindContentType:
			if rs.Code == http.StatusNotModified {
				continue
			}
		}
		if rs.Conn.N > 0 && rs.Conn.Lists(f.Name) {
			continue
		}
		lower(f.Name)
		pc.out.f = append(pc.out.f, *f)
	}
	if !final {
		return
	}
	region := ex.ep.region.name
	b := slices64(pc.vals[:0], 96+len(region))
	if rs.CLen >= 0 && h1.BodyAllowed(rs.Code) {
		start := len(b)
		b = strconv.AppendInt(b, rs.CLen, 10)
		pc.out.add(nameContentLength, b[start:])
	}
	start := len(b)
	b = append(b, region...)
	pc.out.add(nameRegion, b[start:])
	if len(sniff) > 0 {
		start = len(b)
		b = append(b, http.DetectContentType(sniff)...)
		pc.out.add(nameContentType, b[start:])
	}
	if !rs.Date {
		start = len(b)
		b = h1.AppendDate(b)
		pc.out.add(nameDate, b[start+len("Date: "):len(b)-2])
	}
	pc.vals = b
}

// lower turns an ASCII name into lower case in place.
func lower(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// relayLength relays n body bytes. Streams are flushed whenever the
// upstream has nothing more buffered.
func (pc *plainConn) relayLength(u *upConn, n int64, deadline time.Time) error {
	for n > 0 {
		b := u.in.buffered()
		if len(b) == 0 {
			if pc.rs.Stream {
				if err := pc.w.Flush(); err != nil {
					return err
				}
			}
			if err := pc.fill(u, deadline); err != nil {
				return eofIsUnexpected(err)
			}
			continue
		}
		if int64(len(b)) > n {
			b = b[:n]
		}
		if _, err := pc.w.Write(b); err != nil {
			return err
		}
		u.in.consume(len(b))
		n -= int64(len(b))
	}
	return nil
}

// relayChunked relays a chunked body's data, checked line by line as
// fconn.relayChunked checks it, then its trailers.
func (pc *plainConn) relayChunked(u *upConn, deadline time.Time) error {
	var excess int64
	for {
		line, err := pc.chunkLine(u, deadline)
		if err != nil {
			return err
		}
		var n int64
		if n, excess, err = h1.ChunkSize(line, excess); err != nil {
			return err
		}
		u.in.consume(len(line) + 2)
		if n == 0 {
			return pc.relayTrailers(u, deadline)
		}
		if err := pc.relayLength(u, n, deadline); err != nil {
			return err
		}
		if err := pc.w.Flush(); err != nil {
			return err
		}
		for len(u.in.buffered()) < 2 {
			if err := pc.fill(u, deadline); err != nil {
				return eofIsUnexpected(err)
			}
		}
		if b := u.in.buffered(); b[0] != '\r' || b[1] != '\n' {
			return h1.ErrBadChunk
		}
		u.in.consume(2)
	}
}

// relayTrailers reads the trailer section, each field checked as a header
// field and those net/http's server leaves out of trailers dropped, and
// sends the fields kept. They stay in the buffer until sent, so the
// section must fit in it (h1.MaxChunkLine bounds it).
func (pc *plainConn) relayTrailers(u *upConn, deadline time.Time) error {
	pc.out.f = pc.out.f[:0]
	off := 0 // of the next line in the buffer
	for {
		b := u.in.buffered()[off:]
		line, ok, err := h1.ChunkLine(b)
		switch {
		case err != nil:
			return err
		case !ok:
			if err := pc.w.Flush(); err != nil {
				return err
			}
			if err := pc.fill(u, deadline); err != nil {
				return eofIsUnexpected(err)
			}
			continue
		}
		if off += len(line) + 2; off > h1.MaxChunkLine {
			return h1.ErrBadChunk
		}
		if len(line) == 0 {
			break
		}
		f, keep, err := h1.Trailer(line)
		if err != nil {
			return err
		}
		if keep {
			lower(f.Name)
			pc.out.f = append(pc.out.f, f)
		}
	}
	var err error
	if len(pc.out.f) > 0 {
		err = pc.w.WriteTrailers(&pc.out)
	}
	u.in.consume(off)
	return err
}

// chunkLine returns the next line of a chunked body without its CRLF,
// still in the buffer, once h1.ChunkLine finds it whole and well formed.
func (pc *plainConn) chunkLine(u *upConn, deadline time.Time) ([]byte, error) {
	for {
		line, ok, err := h1.ChunkLine(u.in.buffered())
		switch {
		case err != nil:
			return nil, err
		case ok:
			return line, nil
		}
		if err := pc.w.Flush(); err != nil {
			return nil, err
		}
		if err := pc.fill(u, deadline); err != nil {
			return nil, eofIsUnexpected(err)
		}
	}
}

// relayUntilClose relays a body that ends when the upstream closes.
func (pc *plainConn) relayUntilClose(u *upConn, deadline time.Time) error {
	for {
		if b := u.in.buffered(); len(b) > 0 {
			if _, err := pc.w.Write(b); err != nil {
				return err
			}
			u.in.consume(len(b))
		}
		if err := pc.w.Flush(); err != nil {
			return err
		}
		switch err := pc.fill(u, deadline); {
		case err == io.EOF:
			return nil
		case err != nil:
			return eofIsUnexpected(err)
		}
	}
}
