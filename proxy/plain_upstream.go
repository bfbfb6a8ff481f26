package proxy

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// The client side of ServePlain's upstream exchange: the round trip is
// fastpath.Trip's, as on the fast path; here are what it sends for a body
// streamed from the client, and the relays to a PlainResponse rather than
// a socket. The client's presence is learnt from its Done channel, looked
// at once a second while the upstream is to answer.

// sendStream writes the request head and the body read so far, then the
// rest of the body as it comes from the client (chunked when its length
// is unknown). A client body that breaks
// off or is too slow is marked in pc.sb and ends the attempt.
func (pc *plainConn) sendStream(u *fastpath.UpConn) error {
	if _, err := u.C.Write(pc.wire); err != nil {
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
			pc.trip.BodyRead = pc.trip.BodyRead || k > 0
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
			if _, werr := u.C.Write(out); werr != nil {
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
				if _, err := io.WriteString(u.C, "0\r\n\r\n"); err != nil {
					return err
				}
			}
			return nil
		case err != nil:
			pc.sb.slow.Store(bodyTooSlow(err))
			return err
		}
	}
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
	case err == fastpath.ErrClientGone || pc.trip.ClientGone():
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

// respond relays the response whose head is in pc.trip.Resp to the client.
func (pc *plainConn) respond(u *fastpath.UpConn, whole time.Time) {
	ex, rs := pc.ex, &pc.trip.Resp
	ex.code = rs.Code
	m := rs.Mode(pc.head)
	deadline := whole
	if rs.Stream {
		deadline = time.Time{} // streams live as long as both sides want
	}
	_ = pc.trip.Watch(u, deadline) // failing, the reads fail too
	pc.fieldsFor(m, pc.trip.Sniff(u, m, deadline), true)
	u.In.Consume(rs.Size)
	keep := rs.Reusable(m)
	err := pc.w.WriteHead(rs.Code, &pc.out)
	if err == nil {
		err = pc.trip.Relay(u, m, deadline)
	}
	if err == nil && m == h1.BodyChunked {
		err = pc.relayTrailers(u, deadline)
	}
	if err != nil {
		pc.w.Abort()
	}
	if err != nil || !keep || len(u.In.Buffered()) > 0 {
		u.Close()
		return
	}
	ex.ep.st.fast.Put(u, time.Now())
}

// fieldsFor fills pc.out with the response's fields for the client, the
// way h1.Response.AppendHead selects them, names in lower case: final is
// false for a 1xx head, which gets no fields added.
func (pc *plainConn) fieldsFor(m h1.BodyMode, sniff []byte, final bool) {
	rs, ex := &pc.trip.Resp, pc.ex
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

// relayTrailers reads the trailer section, each field checked as a header
// field and those net/http's server leaves out of trailers dropped, and
// sends the fields kept. They stay in the buffer until sent, so the
// section must fit in it (h1.MaxChunkLine bounds it).
func (pc *plainConn) relayTrailers(u *fastpath.UpConn, deadline time.Time) error {
	pc.out.f = pc.out.f[:0]
	off := 0 // of the next line in the buffer
	for {
		b := u.In.Buffered()[off:]
		line, ok, err := h1.ChunkLine(b)
		switch {
		case err != nil:
			return err
		case !ok:
			if err := pc.w.Flush(); err != nil {
				return err
			}
			if err := pc.trip.Fill(u, deadline); err != nil {
				return fastpath.UnexpectedEOF(err)
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
	u.In.Consume(off)
	return err
}

// inform relays the informational response head the upstream sent.
func (pc *plainConn) inform() {
	pc.fieldsFor(h1.BodyNone, nil, false)
	if pc.w.WriteHead(pc.trip.Resp.Code, &pc.out) == nil {
		_ = pc.w.Flush() // a client gone shows when the response is written
	}
}
