package node

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/proxy"
)

// accessLog is the node's side of the proxy's access log: the file is
// opened at start and reopened on every reload (log rotation: move the
// file, then SIGHUP), and closed at stop.
type accessLog struct {
	mu  sync.Mutex
	log *proxy.AccessLog // nil when off
}

// openAccessLog opens access_log.path for appending; nil when it is off.
func openAccessLog(path string) (io.Writer, error) {
	switch path {
	case "":
		return nil, nil
	case config.AccessLogStdout:
		return struct{ io.Writer }{os.Stdout}, nil // never closed
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640) //nolint:gosec // G302: an operator's log, readable by the group as web servers' are
	if err != nil {
		return nil, fmt.Errorf("opening access log: %w", err)
	}
	return f, nil
}

// set makes out (nil: off) the proxy's access log output, reusing the
// running AccessLog so that no line is lost.
func (a *accessLog) set(n *Node, out io.Writer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case out == nil && a.log != nil:
		n.proxy.SetAccessLog(nil)
		a.log.Close()
		a.log = nil
	case out != nil && a.log != nil:
		a.log.Reopen(out)
	case out != nil:
		a.log = proxy.NewAccessLog(out, n.opts.Logger)
		n.proxy.SetAccessLog(a.log)
	}
}

// close writes out the waiting lines and closes the file.
func (a *accessLog) close(n *Node) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.log != nil {
		if n.proxy != nil {
			n.proxy.SetAccessLog(nil)
		}
		a.log.Close()
		a.log = nil
	}
}

// closeWriter closes an output openAccessLog opened and nobody uses.
func closeWriter(w io.Writer) {
	if c, ok := w.(io.Closer); ok {
		_ = c.Close()
	}
}
