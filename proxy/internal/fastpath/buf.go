package fastpath

import (
	"errors"
	"io"
)

// Buf is a read buffer: bytes B[R:W] are read and not yet consumed.
type Buf struct {
	B    []byte
	R, W int
}

// errBufferFull is Fill's error when the buffer has no room.
var errBufferFull = errors.New("fastpath: buffer full")

func (in *Buf) Buffered() []byte { return in.B[in.R:in.W] }

func (in *Buf) Consume(n int) {
	in.R += n
	if in.R == in.W {
		in.R, in.W = 0, 0
	}
}

// Fill reads once from c into the free space, moving the unread bytes to
// the front first when compact is set and that makes room. It returns
// errBufferFull when there is no room.
func (in *Buf) Fill(c io.Reader, compact bool) (int, error) {
	if in.W == len(in.B) {
		if !compact || in.R == 0 {
			return 0, errBufferFull
		}
		in.W = copy(in.B, in.B[in.R:in.W])
		in.R = 0
	}
	n, err := c.Read(in.B[in.W:])
	in.W += n
	return n, err
}

// Grow doubles the buffer up to limit; false when it is that large.
func (in *Buf) Grow(limit int) bool {
	if len(in.B) >= limit {
		return false
	}
	nb := make([]byte, min(2*len(in.B), limit))
	in.W = copy(nb, in.B[in.R:in.W])
	in.R = 0
	in.B = nb
	return true
}
