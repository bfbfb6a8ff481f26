package fastpath

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
)

// readFromConn is a connection whose ReadFrom notes that it was used.
type readFromConn struct {
	net.Conn
	used bool
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	c.used = true
	return io.Copy(io.Discard, r)
}

// TestSockWriterKeepsReadFrom: a body copied into the client's buffered
// writer goes through the connection's ReadFrom, which splices between
// TCP sockets, and not through user-space buffers.
func TestSockWriterKeepsReadFrom(t *testing.T) {
	c := &readFromConn{}
	bw := bufio.NewWriter(&sockWriter{sockOp{c: c}})
	if _, err := io.CopyN(bw, strings.NewReader("body"), 4); err != nil {
		t.Fatal(err)
	}
	if !c.used {
		t.Error("the copy did not use the connection's ReadFrom")
	}
}
