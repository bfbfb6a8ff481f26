package proxy

import (
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// relayTrailers relays the trailer fields, each checked as a header field
// and those net/http's server leaves out of trailers dropped, and the
// final empty line.
func (fc *fconn) relayTrailers(u *fastpath.UpConn, deadline time.Time) error {
	for total := 0; ; {
		line, err := fc.trip.ChunkLine(u, deadline)
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
