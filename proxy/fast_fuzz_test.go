package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzRequestHead: a head the fast path accepts is one net/http reads the
// same way (method, target, Host, body length), so that taking it never
// changes what is forwarded.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a.example:80\r\nContent-Length: 3\r\nConnection: close, x-a\r\n\r\n",
		"GET /%2F HTTP/1.1\r\nhost: [::1]:8\r\nTe: trailers\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 01\r\n\r\n",
		"PATCH /a;b HTTP/1.1\r\nHost: a\r\nUser-Agent:\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
		"POST / HTTP/1.1\nHost: a\ntransfer-encoding: chunked\nContent-Length: 5\n\n",
		"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		n := headEnd(head, 0)
		if n < 0 {
			return
		}
		head = head[:n]
		var rq reqHead
		taken := rq.parse(head)
		// A head with both Content-Length and Transfer-Encoding (or
		// Transfer-Encoding in HTTP/1.0), as net/http reads its fields,
		// is refused (answered 400, and the connection closed).
		if proto, hdr, ok := readFields(head); ok {
			_, cl := hdr["Content-Length"]
			_, te := hdr["Transfer-Encoding"]
			if te && (cl || proto == "HTTP/1.0") {
				if taken {
					t.Fatalf("fast path took %q", head)
				}
				if why := screenRequest(head); why != framingCLAndTE && why != framingTE10 {
					t.Fatalf("%q: screened as %v, want refused", head, why)
				}
			}
		}
		if !taken {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("fast path took %q, net/http refuses it: %v", head, err)
		}
		switch {
		case r.Method != string(rq.methodName):
			t.Errorf("method %q, net/http %q", rq.methodName, r.Method)
		case r.RequestURI != string(rq.target):
			t.Errorf("target %q, net/http %q", rq.target, r.RequestURI)
		case r.URL.RequestURI() != string(rq.target):
			t.Errorf("target %q is sent by net/http as %q", rq.target, r.URL.RequestURI())
		case r.Host != string(rq.host):
			t.Errorf("host %q, net/http %q", rq.host, r.Host)
		case r.ContentLength != rq.clen:
			t.Errorf("length %d, net/http %d", rq.clen, r.ContentLength)
		case r.Close != rq.conn.close:
			t.Errorf("close %v, net/http %v", rq.conn.close, r.Close)
		}
	})
}

// readFields reads a request head's protocol and fields as net/http's
// server does; false when it would refuse them.
func readFields(head []byte) (string, textproto.MIMEHeader, bool) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	line, err := tp.ReadLine()
	if err != nil {
		return "", nil, false
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return "", nil, false
	}
	return line[strings.LastIndexByte(line, ' ')+1:], hdr, true
}

// FuzzResponseHead: a response head the fast path accepts is one
// http.ReadResponse reads with the same status and framing.
func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\n",
		"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, head []byte, isHead bool) {
		n := headEnd(head, 0)
		if n < 0 {
			return
		}
		head = head[:n]
		var rs respHead
		var plain []byte
		if parseResponseHead(&rs, &plain, head) != nil {
			return
		}
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("fast path took %q, net/http refuses it: %v", head, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != rs.code {
			t.Errorf("status %d, net/http %d", rs.code, resp.StatusCode)
		}
		chunked := len(resp.TransferEncoding) > 0 && strings.EqualFold(resp.TransferEncoding[0], "chunked")
		switch m := rs.mode(isHead); m {
		case bodyChunked:
			if !chunked {
				t.Errorf("chunked, net/http %v", resp.TransferEncoding)
			}
		case bodyLength:
			if resp.ContentLength != rs.clen {
				t.Errorf("length %d, net/http %d", rs.clen, resp.ContentLength)
			}
		case bodyClose:
			if resp.ContentLength != -1 || chunked {
				t.Errorf("until close, net/http length %d chunked %v", resp.ContentLength, chunked)
			}
		}
	})
}

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
