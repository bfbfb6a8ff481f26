package proxy

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// FuzzUpstreamResponse: the fuzzer writes an upstream's bytes (after which
// the upstream closes), and a GET or HEAD goes through both paths. A
// response the fast path relays whole is one the net/http path relays whole
// too, with the same status, body and body framing: the fast path is never
// less strict. (Where the fast path answers 502 or breaks the response
// off, the net/http path may still take it.)
func FuzzUpstreamResponse(f *testing.F) {
	for _, s := range []string{
		okResponse,
		okResponse + strayResponse,
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		timeout408,
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(okResponse), true)
	var answer atomic.Pointer[[]byte]
	up := newWireUpstream(f, func(c net.Conn, _ *http.Request, _ int64) bool {
		_, _ = c.Write(*answer.Load())
		return false
	})
	cfg := cannedConfig(up.URL)
	cfg.Services[0].Proxy.Retries = 0
	fast, slow := newHarness(f, cfg, fastPath), newHarness(f, cfg, slowPath)
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		answer.Store(&raw)
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		fo, so := relayed(t, fast.addr, method), relayed(t, slow.addr, method)
		// net/http's transport may pick a pooled connection the upstream
		// has just closed and give up on it: ask it again.
		for i := 0; i < 2 && fo.whole && !fo.own && fo != so; i++ {
			so = relayed(t, slow.addr, method)
		}
		if fo.whole && !fo.own && fo != so {
			t.Fatalf("upstream sent %q for a %s:\nfast path %+v\nnet/http  %+v", raw, method, fo, so)
		}
	})
}

// outcome is what a client got from the proxy.
type outcome struct {
	whole   bool // a final response, read to the end of its body
	own     bool // 502 or 504: most likely the proxy's own error answer
	status  int
	body    string
	chunked bool // the body is chunked (a non-empty one)
}

// relayed sends one request to the proxy at addr and reads its answer.
func relayed(t *testing.T, addr, method string) outcome {
	t.Helper()
	c := dialRaw(t, addr)
	defer c.conn.Close()
	c.send(method + " / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	for {
		resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
		if err != nil {
			return outcome{}
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 200 {
			continue
		}
		return outcome{
			whole:   err == nil,
			own:     resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout,
			status:  resp.StatusCode,
			body:    string(body),
			chunked: len(body) > 0 && len(resp.TransferEncoding) > 0,
		}
	}
}
