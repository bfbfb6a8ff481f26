package proxy

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// rewrite is ReverseProxy's Rewrite hook: it points the outbound request at
// the chosen endpoint and sets the forwarding headers. The inbound
// Forwarded and X-Forwarded-* headers have already been stripped from Out;
// they are carried over only from trusted proxies.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeOf(pr.In.Context())
	if ex == nil {
		return
	}
	in, out := pr.In, pr.Out
	ex.path, ex.rawPath, ex.query = out.URL.Path, out.URL.RawPath, out.URL.RawQuery
	ex.target(out.URL, ex.ep)
	out.Host = in.Host

	if ex.trusted {
		if v := in.Header["X-Forwarded-For"]; len(v) > 0 {
			out.Header["X-Forwarded-For"] = v
		}
	}
	pr.SetXForwarded()
	if ex.trusted {
		for _, k := range [...]string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := in.Header[k]; len(v) > 0 {
				out.Header[k] = v
			}
		}
	}
	fwd := forwardedElement(peerAddr(in.RemoteAddr), in.Host, in.TLS != nil)
	if prior := in.Header["Forwarded"]; ex.trusted && len(prior) > 0 {
		fwd = strings.Join(prior, ", ") + ", " + fwd
	}
	out.Header["Forwarded"] = []string{fwd}
}

// target points u at endpoint ep, keeping the client's path (below the
// endpoint's base path) and query.
func (ex *exchange) target(u *url.URL, ep *endpoint) {
	base := ep.url
	u.Scheme, u.Host = base.Scheme, base.Host
	if base.Path == "" || base.Path == "/" {
		u.Path, u.RawPath = ex.path, ex.rawPath
	} else {
		u.Path, u.RawPath = joinURLPath(base, &url.URL{Path: ex.path, RawPath: ex.rawPath})
	}
	switch {
	case base.RawQuery == "":
		u.RawQuery = ex.query
	case ex.query == "":
		u.RawQuery = base.RawQuery
	default:
		u.RawQuery = base.RawQuery + "&" + ex.query
	}
}

// joinURLPath joins a base path and a request path with exactly one slash,
// keeping escaped forms (as httputil's SetURL does).
func joinURLPath(a, b *url.URL) (path, rawpath string) {
	if a.RawPath == "" && b.RawPath == "" {
		return singleJoiningSlash(a.Path, b.Path), ""
	}
	apath, bpath := a.EscapedPath(), b.EscapedPath()
	aslash, bslash := strings.HasSuffix(apath, "/"), strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return a.Path + b.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return a.Path + "/" + b.Path, apath + "/" + bpath
	}
	return a.Path + b.Path, apath + bpath
}

func singleJoiningSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

// forwardedElement is this hop's RFC 7239 Forwarded element.
func forwardedElement(peer netip.Addr, host string, tls bool) string {
	var buf [128]byte
	return string(appendForwarded(buf[:0], peer, host, tls))
}

// appendForwarded appends this hop's RFC 7239 Forwarded element to b.
func appendForwarded[S ~string | ~[]byte](b []byte, peer netip.Addr, host S, tls bool) []byte {
	b = append(b, "for="...)
	switch {
	case peer.Is4():
		b = peer.AppendTo(b)
	case peer.IsValid():
		b = append(b, `"[`...)
		b = peer.AppendTo(b)
		b = append(b, `]"`...)
	default:
		b = append(b, "unknown"...)
	}
	if len(host) > 0 {
		b = append(b, ";host="...)
		b = appendToken(b, host)
	}
	if tls {
		b = append(b, ";proto=https"...)
	} else {
		b = append(b, ";proto=http"...)
	}
	return b
}

// appendToken appends v as an RFC 7230 token, or as a quoted string when
// it holds other characters.
func appendToken[S ~string | ~[]byte](b []byte, v S) []byte {
	if isToken(v) {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}

func isToken[S ~string | ~[]byte](v S) bool {
	if len(v) == 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !h1.TokenByte(v[i]) {
			return false
		}
	}
	return true
}

// modifyResponse is ReverseProxy's ModifyResponse hook for the response
// that reaches the client (failed attempts never get here).
func (p *Proxy) modifyResponse(resp *http.Response) error {
	ex := exchangeOf(resp.Request.Context())
	if ex == nil {
		return nil
	}
	ex.code = resp.StatusCode
	resp.Header["X-Meridian-Region"] = ex.ep.region.hdr
	if streaming(resp) {
		// Upgraded connections and streams live as long as both sides
		// want: the timeout covered the wait for the head only.
		ex.timer.Stop()
		if ex.hasBody {
			_ = http.NewResponseController(ex.w).SetReadDeadline(time.Time{}) // best effort, as when set
		}
	}
	if ex.svc.sticky == stickyCookie && ex.stickyEP != ex.ep {
		i := 0
		if resp.Request.TLS != nil {
			i = 1
		}
		resp.Header.Add("Set-Cookie", ex.ep.cookie[i])
	}
	return nil
}

// streaming reports whether a response is an upgraded connection, an
// event stream or gRPC.
func streaming(resp *http.Response) bool {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return true
	}
	ct := resp.Header.Get("Content-Type")
	return hasPrefixFold(ct, "text/event-stream") || hasPrefixFold(ct, "application/grpc")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// errorHandler answers when no attempt produced a response: 504 after a
// timeout, 408 or 400 when the client's streamed body failed, else 502. A
// status is always written (a handler that writes nothing would send 200);
// for a client that went away it is counted as 499.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeOf(r.Context())
	code, msg := http.StatusBadGateway, "meridian: no upstream could answer\n"
	counted := 0
	switch {
	case ex == nil:
	case ex.stream != nil && ex.stream.slow.Load():
		code, msg = http.StatusRequestTimeout, "meridian: request body too slow\n"
	case ex.stream != nil && ex.stream.broken.Load():
		code, msg = http.StatusBadRequest, "meridian: reading request body failed\n"
	case context.Cause(ex.ctx) == errTimeout:
		code, msg = http.StatusGatewayTimeout, "meridian: upstream timed out\n"
	case ex.ctx.Err() != nil:
		counted = statusClientClosed
	case isTimeout(err):
		code, msg = http.StatusGatewayTimeout, "meridian: upstream timed out\n"
	case ex.write && ex.lastFail == failConnect:
		ex.code = http.StatusServiceUnavailable
		writeUnavailable(w, ex)
		return
	}
	if ex != nil {
		ex.code = code
		if counted != 0 {
			ex.code = counted
		}
		if ex.ep != nil {
			w.Header()["X-Meridian-Region"] = ex.ep.region.hdr
			p.log.Debug("no upstream answered", "service", ex.svc.name, "region", ex.ep.region.name,
				"attempts", ex.attempts, "err", err)
		}
	}
	plainError(w, code, msg)
}
