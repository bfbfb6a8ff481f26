package proxy

import (
	"net/url"
	"strconv"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// appendRequest appends the request head sent upstream, the way
// ReverseProxy with the proxy's rewrite and http.Transport would write it:
// the client's Host, hop-by-hop fields and the fields the Connection
// header lists removed, forwarding fields replaced (or, from a trusted
// proxy, extended), Content-Length from the body read.
func appendRequest(b []byte, fc *fastpath.Conn, ex *exchange, rq *h1.Request) []byte {
	b = append(b, rq.MethodName...)
	b = append(b, ' ')
	b = appendTarget(b, ex, rq.Target)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, rq.Host...)
	b = append(b, "\r\n"...)
	if len(rq.UA) > 0 {
		b = append(b, "User-Agent: "...)
		b = append(b, rq.UA...)
		b = append(b, "\r\n"...)
	}
	// As http.Transport: always for the methods that usually carry a body.
	if rq.CLen > 0 || rq.Method == h1.MethodPost || rq.Method == h1.MethodPut || rq.Method == h1.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, rq.CLen, 10)
		b = append(b, "\r\n"...)
	}
	b = rq.AppendEndToEnd(b)

	b = append(b, "X-Forwarded-For: "...)
	if ex.trusted && rq.XFF {
		b = rq.AppendValues(b, h1.KindXFF, ", ")
		b = append(b, ", "...)
	}
	b = append(b, fc.PeerIP...)
	b = append(b, "\r\n"...)
	if ex.trusted && rq.XFHost {
		b = rq.AppendFields(b, h1.KindXFHost, "X-Forwarded-Host")
	} else {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, rq.Host...)
		b = append(b, "\r\n"...)
	}
	switch {
	case ex.trusted && rq.XFProto:
		b = rq.AppendFields(b, h1.KindXFProto, "X-Forwarded-Proto")
	case fc.TLS != nil:
		b = append(b, "X-Forwarded-Proto: https\r\n"...)
	default:
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	b = append(b, "Forwarded: "...)
	if ex.trusted && rq.Fwd {
		b = rq.AppendValues(b, h1.KindForwarded, ", ")
		b = append(b, ", "...)
	}
	b = appendForwarded(b, fc.Peer, rq.Host, fc.TLS != nil)
	return append(b, "\r\n\r\n"...)
}

// appendTarget appends the request target for the exchange's endpoint: the
// client's, below the endpoint's base path and with its query, as
// exchange.target builds it.
func appendTarget(b []byte, ex *exchange, target []byte) []byte {
	base := ex.ep.url
	if (base.Path == "" || base.Path == "/") && base.RawQuery == "" {
		return append(b, target...)
	}
	u, err := url.ParseRequestURI(string(target))
	if err != nil {
		return append(b, target...) // a clean target always parses
	}
	ex.path, ex.rawPath, ex.query = u.Path, u.RawPath, u.RawQuery
	ex.target(u, ex.ep)
	return append(b, u.RequestURI()...)
}
