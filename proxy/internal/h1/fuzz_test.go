package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strings"
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
		n := HeadEnd(head, 0)
		if n < 0 {
			return
		}
		head = head[:n]
		var rq Request
		taken := rq.Parse(head)
		// A head with both Content-Length and Transfer-Encoding (or
		// Transfer-Encoding in HTTP/1.0), as net/http reads its fields,
		// is refused (answered 400, and the connection closed).
		if proto, hdr, ok := readFields(head); ok {
			_, cl := hdr["Content-Length"]
			_, te := hdr["Transfer-Encoding"]
			if te && (cl || proto == "HTTP/1.0") {
				if taken {
					t.Fatalf("parser took %q", head)
				}
				if why := ScreenRequest(head); why != FramingCLAndTE && why != FramingTE10 {
					t.Fatalf("%q: screened as %v, want refused", head, why)
				}
			}
		}
		if !taken {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("parser took %q, net/http refuses it: %v", head, err)
		}
		switch {
		case r.Method != string(rq.MethodName):
			t.Errorf("method %q, net/http %q", rq.MethodName, r.Method)
		case r.RequestURI != string(rq.Target):
			t.Errorf("target %q, net/http %q", rq.Target, r.RequestURI)
		case r.URL.RequestURI() != string(rq.Target):
			t.Errorf("target %q is sent by net/http as %q", rq.Target, r.URL.RequestURI())
		case r.Host != string(rq.Host):
			t.Errorf("host %q, net/http %q", rq.Host, r.Host)
		case r.ContentLength != rq.CLen:
			t.Errorf("length %d, net/http %d", rq.CLen, r.ContentLength)
		case r.Close != rq.Conn.Close:
			t.Errorf("close %v, net/http %v", rq.Conn.Close, r.Close)
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
	_, rest, ok1 := strings.Cut(line, " ")
	_, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return "", nil, false // net/http refuses the request line
	}
	return proto, hdr, true
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
		n := HeadEnd(head, 0)
		if n < 0 {
			return
		}
		head = head[:n]
		var rs Response
		var plain []byte
		if ParseResponse(&rs, &plain, head) != nil {
			return
		}
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("parser took %q, net/http refuses it: %v", head, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != rs.Code {
			t.Errorf("status %d, net/http %d", rs.Code, resp.StatusCode)
		}
		chunked := len(resp.TransferEncoding) > 0 && strings.EqualFold(resp.TransferEncoding[0], "chunked")
		switch m := rs.Mode(isHead); m {
		case BodyChunked:
			if !chunked {
				t.Errorf("chunked, net/http %v", resp.TransferEncoding)
			}
		case BodyLength:
			if resp.ContentLength != rs.CLen {
				t.Errorf("length %d, net/http %d", rs.CLen, resp.ContentLength)
			}
		case BodyClose:
			if resp.ContentLength != -1 || chunked {
				t.Errorf("until close, net/http length %d chunked %v", resp.ContentLength, chunked)
			}
		}
	})
}
