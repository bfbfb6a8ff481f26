package proxy

import (
	"bytes"
	"strconv"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
)

// The proxy's side of the fast path: fastpath.Server calls route for each
// request it parses, the one call per request from the engine to the
// proxy.

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
