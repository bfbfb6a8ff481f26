package fastpath

import (
	"bufio"
	"io"
	"strconv"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// Sink is the client side of a relayed response body: either W, the
// buffered writer of an HTTP/1.1 client connection, for which the relay
// frames chunked bodies and bodies delimited by the close itself, or P,
// a writer that frames the body itself (an HTTP/2 stream), used when W
// is nil. W is a concrete type, so that the fast path makes no interface
// call per write.
type Sink struct {
	W *bufio.Writer
	P BodyWriter

	sizeBuf [24]byte // a chunk-size line for W
}

// BodyWriter takes the bytes of a body that it frames itself.
type BodyWriter interface {
	Write(p []byte) (int, error)
	Flush() error
}

func (s *Sink) write(b []byte) error {
	var err error
	if s.W != nil {
		_, err = s.W.Write(b)
	} else {
		_, err = s.P.Write(b)
	}
	return err
}

// Flush sends what the sink buffered.
func (s *Sink) Flush() error {
	if s.W != nil {
		return s.W.Flush()
	}
	return s.P.Flush()
}

// Relay relays the body of the response whose head is in t.Resp (and was
// consumed from u's buffer) to t.Out, delimited as m says, waiting for the
// upstream until deadline (zero: none). Of a chunked body it relays the
// data up to the last chunk, whose size line it consumes: the trailer
// section is the caller's. A stream (rs.Stream) is flushed whenever the
// upstream has nothing more buffered; to W, a large body that is not a
// stream is spliced once the buffer is empty.
func (t *Trip) Relay(u *UpConn, m h1.BodyMode, deadline time.Time) error {
	switch m {
	case h1.BodyLength:
		return t.relayLength(u, t.Resp.CLen, t.Resp.Stream, deadline)
	case h1.BodyChunked:
		return t.relayChunked(u, deadline)
	case h1.BodyClose:
		return t.relayUntilClose(u, deadline)
	}
	return nil
}

// relayLength copies n body bytes from the upstream to the client,
// flushing before each wait for the upstream when stream is set.
func (t *Trip) relayLength(u *UpConn, n int64, stream bool, deadline time.Time) error {
	s := &t.Out
	for n > 0 {
		b := u.In.Buffered()
		if len(b) == 0 {
			if !stream && s.W != nil {
				_, err := io.CopyN(s.W, u.C, n)
				return err
			}
			if stream {
				if err := s.Flush(); err != nil {
					return err
				}
			}
			if err := t.Fill(u, deadline); err != nil {
				return UnexpectedEOF(err)
			}
			continue
		}
		if int64(len(b)) > n {
			b = b[:n]
		}
		if err := s.write(b); err != nil {
			return err
		}
		u.In.Consume(len(b))
		n -= int64(len(b))
	}
	return nil
}

// relayChunked relays a chunked body's data, checked line by line as
// net/http's chunked reader checks it (h1.ChunkLine, h1.ChunkSize); to W
// it is framed anew as net/http's server frames it: sizes without
// extensions, then the data. Nothing it refuses reaches the client. The
// client has each chunk's data as soon as it is relayed, as ReverseProxy
// flushes a body of unknown length.
func (t *Trip) relayChunked(u *UpConn, deadline time.Time) error {
	s := &t.Out
	var excess int64
	for {
		line, err := t.ChunkLine(u, deadline)
		if err != nil {
			return err
		}
		var n int64
		if n, excess, err = h1.ChunkSize(line, excess); err != nil {
			return err
		}
		u.In.Consume(len(line) + 2)
		if s.W != nil {
			if _, err := s.W.Write(append(strconv.AppendInt(s.sizeBuf[:0], n, 16), '\r', '\n')); err != nil {
				return err
			}
		}
		if n == 0 {
			return nil
		}
		if err := t.relayLength(u, n, s.W != nil || t.Resp.Stream, deadline); err != nil {
			return err
		}
		if err := s.Flush(); err != nil {
			return err
		}
		for len(u.In.Buffered()) < 2 {
			if err := t.Fill(u, deadline); err != nil {
				return UnexpectedEOF(err)
			}
		}
		if b := u.In.Buffered(); b[0] != '\r' || b[1] != '\n' {
			return h1.ErrBadChunk
		}
		u.In.Consume(2)
		if s.W != nil {
			if _, err := s.W.WriteString("\r\n"); err != nil {
				return err
			}
		}
	}
}

// ChunkLine returns the next line of a chunked body without its CRLF,
// still in the upstream buffer (the caller consumes it and the CRLF),
// once h1.ChunkLine finds it whole and well formed. Before waiting for the
// upstream it flushes what the client has been given.
func (t *Trip) ChunkLine(u *UpConn, deadline time.Time) ([]byte, error) {
	for {
		line, ok, err := h1.ChunkLine(u.In.Buffered())
		switch {
		case err != nil:
			return nil, err
		case ok:
			return line, nil
		}
		if err := t.Out.Flush(); err != nil {
			return nil, err
		}
		if err := t.Fill(u, deadline); err != nil {
			return nil, UnexpectedEOF(err)
		}
	}
}

// relayUntilClose relays a body that ends when the upstream closes,
// flushing as it comes; to W it is chunked (as net/http's server does).
func (t *Trip) relayUntilClose(u *UpConn, deadline time.Time) error {
	s := &t.Out
	for {
		if b := u.In.Buffered(); len(b) > 0 {
			if s.W != nil {
				line := strconv.AppendInt(s.sizeBuf[:0], int64(len(b)), 16)
				line = append(line, "\r\n"...)
				if _, err := s.W.Write(line); err != nil {
					return err
				}
			}
			if err := s.write(b); err != nil {
				return err
			}
			if s.W != nil {
				if _, err := s.W.WriteString("\r\n"); err != nil {
					return err
				}
			}
			u.In.Consume(len(b))
		}
		if err := s.Flush(); err != nil {
			return err
		}
		switch err := t.Fill(u, deadline); err {
		case nil:
		case io.EOF:
			if s.W != nil {
				_, err = s.W.WriteString("0\r\n\r\n")
				return err
			}
			return nil
		default:
			return UnexpectedEOF(err)
		}
	}
}
