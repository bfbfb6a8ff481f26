package fastpath

import (
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// relayTrailers relays the trailer fields, each checked as a header field
// and those net/http's server leaves out of trailers dropped, and the
// final empty line.
func (fc *Conn) relayTrailers(u *UpConn, deadline time.Time) error {
	for total := 0; ; {
		line, err := fc.Trip.ChunkLine(u, deadline)
		if err != nil {
			return err
		}
		if total += len(line) + 2; total > h1.MaxChunkLine {
			return h1.ErrBadChunk
		}
		if len(line) == 0 {
			u.In.Consume(2)
			_, err := fc.BW.WriteString("\r\n")
			return err
		}
		f, keep, err := h1.Trailer(line)
		if err != nil {
			return err
		}
		if keep {
			fc.Scratch = h1.AppendFieldLine(fc.Scratch[:0], &f)
			if _, err := fc.BW.Write(fc.Scratch); err != nil {
				return err
			}
		}
		u.In.Consume(len(line) + 2)
	}
}

// Respond relays the response whose head is in fc.Trip.Resp, read from u,
// to the client; pool takes u back when it may carry another request,
// region names the region in X-Meridian-Region, head tells a HEAD
// request, whole is when the request must be done, and closing that the
// connection closes after it.
func (fc *Conn) Respond(u *UpConn, pool *Pool, region string, head bool, whole time.Time, closing bool) Action {
	rs := &fc.Trip.Resp
	m := rs.Mode(head)
	deadline := whole
	if rs.Stream {
		// Streams live as long as both sides want: the timeout covered
		// the wait for the head only.
		deadline = time.Time{}
		_ = fc.Trip.SetReadDeadline(u, deadline)
		_ = fc.C.SetWriteDeadline(time.Time{})
	} else if body := int64(len(u.In.Buffered()) - rs.Size); !fc.Trip.ReadDeadline().Equal(whole) &&
		m != h1.BodyNone && (m != h1.BodyLength || body < rs.CLen) {
		// The body is still to come and may take the rest of the time:
		// the head's wait ended earlier (a header timeout, or the next
		// look at the client).
		_ = fc.Trip.SetReadDeadline(u, whole)
	}
	closing = closing || fc.srv.Shutting()
	fc.Scratch = rs.AppendHead(fc.Scratch[:0], m, region, fc.Trip.Sniff(u, m, deadline), closing)
	u.In.Consume(rs.Size)
	keep := rs.Reusable(m)
	_, err := fc.BW.Write(fc.Scratch)
	if err == nil {
		err = fc.Trip.Relay(u, m, deadline)
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
		pool.Put(u, time.Now())
	}
	if err != nil || closing {
		return DoClose
	}
	return DoNext
}

// ReadBody appends the request body, clen bytes, to the wire. On failure it returns the
// status and message ServeHTTP answers with.
func (fc *Conn) ReadBody(clen int64, whole time.Time) (int, string) {
	b := fc.In.Buffered()
	if int64(len(b)) > clen {
		b = b[:clen]
	}
	fc.Wire = append(fc.Wire, b...)
	fc.In.Consume(len(b))
	rest := int(clen) - len(b)
	if rest == 0 {
		return 0, ""
	}
	start := len(fc.Wire)
	fc.Wire = slices.Grow(fc.Wire, rest)[:start+rest]
	// A client may not dribble its body for longer than the request may
	// take, as on the net/http path.
	_ = fc.C.SetReadDeadline(whole) // failing, the read fails too
	if _, err := io.ReadFull(fc.src(), fc.Wire[start:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return http.StatusRequestTimeout, "meridian: request body too slow\n"
		}
		return http.StatusBadRequest, "meridian: reading request body failed\n"
	}
	return 0, ""
}

// inform relays the informational response head the upstream sent.
func (fc *Conn) inform() {
	fc.Scratch = fc.Trip.Resp.AppendInformational(fc.Scratch[:0])
	if _, err := fc.BW.Write(fc.Scratch); err == nil {
		_ = fc.BW.Flush() // a client gone shows when the response is written
	}
}
