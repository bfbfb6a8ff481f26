package proxy

import (
	"io"
	"strconv"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// relayLength copies n body bytes from the upstream to the client. A
// stream is flushed whenever the upstream has nothing more buffered; a
// large body that is not a stream is spliced once the buffer is empty.
func (fc *fconn) relayLength(u *fastpath.UpConn, n int64, stream bool) error {
	for n > 0 {
		b := u.In.Buffered()
		if len(b) == 0 {
			if !stream {
				_, err := io.CopyN(fc.bw, u.C, n)
				return err
			}
			if err := fc.bw.Flush(); err != nil {
				return err
			}
			if k, err := u.In.Fill(u.Src(), true); k == 0 {
				return fastpath.UnexpectedEOF(err)
			}
			continue
		}
		if int64(len(b)) > n {
			b = b[:n]
		}
		if _, err := fc.bw.Write(b); err != nil {
			return err
		}
		u.In.Consume(len(b))
		n -= int64(len(b))
	}
	return nil
}

// relayChunked relays a chunked body, checked line by line as net/http's
// chunked reader checks it (h1.ChunkLine, h1.ChunkSize, h1.Trailer) and
// framed anew for the client as net/http's server frames it: sizes
// without extensions, the data, then the trailer fields. Nothing it
// refuses reaches the client. It flushes whenever the upstream has
// nothing more buffered.
func (fc *fconn) relayChunked(u *fastpath.UpConn) error {
	var excess int64
	for {
		line, err := fc.chunkLine(u)
		if err != nil {
			return err
		}
		var n int64
		if n, excess, err = h1.ChunkSize(line, excess); err != nil {
			return err
		}
		u.In.Consume(len(line) + 2)
		if _, err := fc.bw.Write(append(strconv.AppendInt(fc.sizeBuf[:0], n, 16), '\r', '\n')); err != nil {
			return err
		}
		if n == 0 {
			return fc.relayTrailers(u)
		}
		if err := fc.relayLength(u, n, true); err != nil {
			return err
		}
		// The client has each chunk's data as soon as it is relayed, as
		// ReverseProxy flushes a body of unknown length.
		if err := fc.bw.Flush(); err != nil {
			return err
		}
		for len(u.In.Buffered()) < 2 {
			if err := fc.bw.Flush(); err != nil {
				return err
			}
			if k, err := u.In.Fill(u.Src(), true); k == 0 {
				return fastpath.UnexpectedEOF(err)
			}
		}
		if b := u.In.Buffered(); b[0] != '\r' || b[1] != '\n' {
			return h1.ErrBadChunk
		}
		u.In.Consume(2)
		if _, err := fc.bw.WriteString("\r\n"); err != nil {
			return err
		}
	}
}

// relayTrailers relays the trailer fields, each checked as a header field
// and those net/http's server leaves out of trailers dropped, and the
// final empty line.
func (fc *fconn) relayTrailers(u *fastpath.UpConn) error {
	for total := 0; ; {
		line, err := fc.chunkLine(u)
		if err != nil {
			return err
		}
		if total += len(line) + 2; total > h1.MaxChunkLine {
			return h1.ErrBadChunk
		}
		if len(line) == 0 {
			u.In.Consume(2)
			_, err := fc.bw.WriteString("\r\n")
			return err
		}
		f, keep, err := h1.Trailer(line)
		if err != nil {
			return err
		}
		if keep {
			fc.scratch = h1.AppendFieldLine(fc.scratch[:0], &f)
			if _, err := fc.bw.Write(fc.scratch); err != nil {
				return err
			}
		}
		u.In.Consume(len(line) + 2)
	}
}

// chunkLine returns the next line of a chunked body without its CRLF,
// still in the upstream buffer (the caller consumes it and the CRLF),
// once h1.ChunkLine finds it whole and well formed. Before waiting for the
// upstream it flushes what the client has been given.
func (fc *fconn) chunkLine(u *fastpath.UpConn) ([]byte, error) {
	for {
		line, ok, err := h1.ChunkLine(u.In.Buffered())
		switch {
		case err != nil:
			return nil, err
		case ok:
			return line, nil
		}
		if err := fc.bw.Flush(); err != nil {
			return nil, err
		}
		if k, err := u.In.Fill(u.Src(), true); k == 0 {
			return nil, fastpath.UnexpectedEOF(err)
		}
	}
}

// relayUntilClose relays a body that ends when the upstream closes,
// chunked for the client (as net/http's server does), flushing as it
// comes.
func (fc *fconn) relayUntilClose(u *fastpath.UpConn) error {
	for {
		if b := u.In.Buffered(); len(b) > 0 {
			line := strconv.AppendInt(fc.sizeBuf[:0], int64(len(b)), 16)
			line = append(line, "\r\n"...)
			if _, err := fc.bw.Write(line); err != nil {
				return err
			}
			if _, err := fc.bw.Write(b); err != nil {
				return err
			}
			if _, err := fc.bw.WriteString("\r\n"); err != nil {
				return err
			}
			u.In.Consume(len(b))
		}
		if err := fc.bw.Flush(); err != nil {
			return err
		}
		k, err := u.In.Fill(u.Src(), true)
		switch {
		case k > 0:
		case err == io.EOF:
			_, err = fc.bw.WriteString("0\r\n\r\n")
			return err
		default:
			return fastpath.UnexpectedEOF(err)
		}
	}
}
