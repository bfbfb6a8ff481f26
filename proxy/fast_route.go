package proxy

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
)

// The proxy's side of the fast path: fastpath.Server calls route for each
// request it parses (the one call per request from the engine to the
// proxy), and handoff for a connection it gives to net/http.

// route serves the request whose parsed head is the first n buffered
// bytes, or decides that net/http must.
func (fs *fastServer) route(fc *fastpath.Conn, n int) fastpath.Action {
	rq := &fc.Rq
	tab := fs.p.tab.Load()
	if tab == nil || !fs.direct && bytes.HasPrefix(rq.Target, []byte("/.well-known/")) {
		return fastpath.DoHandoff
	}
	sni := ""
	if fc.TLS != nil {
		sni = fc.TLS.ServerName
	}
	svc := tab.withSNI(tab.lookupBytes(rq.Host), sni)
	if svc == nil {
		return fs.misdirected(fc, n)
	}
	if !svc.plain || svc.sticky == stickyCookie || rq.CLen > svc.maxBody {
		return fastpath.DoHandoff
	}
	return fs.forward(fc, tab, svc, n)
}

// misdirected answers 421 for a Host no service owns.
func (fs *fastServer) misdirected(fc *fastpath.Conn, n int) fastpath.Action {
	rq := &fc.Rq
	msg := append(fc.Scratch[:0], "meridian: no service for host "...)
	msg = strconv.AppendQuote(msg, string(rq.Host))
	msg = append(msg, '\n')
	fc.Scratch = msg
	closing := rq.Conn.Close || rq.CLen > 0 // an unread body ends the connection
	fc.In.Consume(n)
	if err := fc.WritePlain(421, msg, "", closing); err != nil || fc.BW.Flush() != nil || closing {
		return fastpath.DoClose
	}
	return fastpath.DoNext
}

// handoff gives the connection to net/http: the bytes already read are
// replayed first when replay is set.
func (fs *fastServer) handoff(fc *fastpath.Conn, replay bool) {
	_ = fc.C.SetDeadline(time.Time{}) // net/http sets its own
	conn := fc.C
	if replay {
		h := &handedConn{Conn: fc.C, slot: fc.Slot.(*connSlot)}
		h.scr.init(fc.C, fc.In.Buffered(), fc.TLS == nil, fs.srv.MaxHeaderBytes, fs.eng.ReadHeader)
		h.scr.log, h.scr.peer = fs.p.log, fc.PeerIP
		conn = h
		if fc.TLS != nil {
			conn = &handedTLSConn{handedConn: h, state: *fc.TLS}
		}
	}
	if !replay {
		fs.slots.Store(conn, fc.Slot) // released when net/http reports it closed
	}
	fc.In.R, fc.In.W = 0, 0
	if !fs.hand.Deliver(conn) && !replay {
		if slot, ok := fs.slots.LoadAndDelete(conn); ok {
			slot.(*connSlot).release() // closed by deliver
		}
	}
}

// handedConn is a connection handed to net/http mid-stream: it reads the
// bytes the fast path had buffered before the rest, all screened
// (handed_screen.go).
type handedConn struct {
	net.Conn
	scr  screener
	slot *connSlot
}

// Close closes the connection and gives its place in the connection
// counts back.
func (h *handedConn) Close() error {
	if h.scr.cut.Load() {
		fastpath.LingerClose(h.Conn) // as the fast path closes after refusing a request
	}
	err := h.Conn.Close()
	h.slot.release()
	return err
}

func (h *handedConn) Read(p []byte) (int, error) { return h.scr.Read(p) }

// connState is told of net/http's state changes of the connection.
func (h *handedConn) connState(st http.ConnState) { h.scr.connState(st) }

// CloseWrite half-closes the connection, so that net/http can close it
// after an error without resetting it.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handedTLSConn is a handed TLS connection: net/http takes its
// ConnectionState for Request.TLS.
type handedTLSConn struct {
	*handedConn
	state tls.ConnectionState
}

func (h *handedTLSConn) ConnectionState() tls.ConnectionState { return h.state }
