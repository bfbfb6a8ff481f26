package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzPlainRequestHead: whatever method, target, authority and field a
// request source hands ServePlain, the head it would send upstream is
// either refused before anything, or one HTTP/1.1 request that net/http
// reads back with the same method, target, Host and field value: no
// field, request or body can be smuggled in through an HTTP/2 value.
func FuzzPlainRequestHead(f *testing.F) {
	f.Add("GET", "/a?b=c", "api.example.com", "x-a", "1")
	f.Add("POST", "/", "api.example.com:8443", "cookie", "a=1")
	f.Add("GET", "/", "api.example.com", "x-a", "1\r\nX-Injected: 1")
	f.Add("GET", "/ HTTP/1.1\r\nX: y", "h", "x", "v")
	f.Add("PROPFIND", "/dav", "[::1]:80", "te", "trailers")
	f.Add("GET", "/", "a\r\nb", "x", "\x00")
	f.Add("GET", "*", "h", "transfer-encoding", "chunked")
	f.Fuzz(func(t *testing.T, method, target, authority, name, value string) {
		hdr := &benchFields{f: [][2][]byte{{[]byte(name), []byte(value)}}}
		rq := &PlainRequest{
			Method: []byte(method), Target: []byte(target), Authority: []byte(authority),
			Header: hdr, Peer: netip.MustParseAddr("192.0.2.1"),
		}
		if !plainCandidate(rq) {
			return
		}
		pc := &plainConn{rq: rq}
		if !pc.scan() {
			return
		}
		u, _ := url.Parse("http://127.0.0.1:1")
		pc.ex = &exchange{ep: &endpoint{url: u}}
		wire := pc.appendRequest(nil)
		br := bufio.NewReader(bytes.NewReader(wire))
		r, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http refuses the head %q: %v", wire, err)
		}
		if br.Buffered() != 0 {
			t.Fatalf("bytes after the head %q", wire)
		}
		if r.Method != method || r.RequestURI != target || r.Host != authority {
			t.Fatalf("read back %s %s Host %s from %q, want %s %s %s", r.Method, r.RequestURI, r.Host, wire, method, target, authority)
		}
		if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
			t.Fatalf("a body framing appeared in %q", wire)
		}
		k := http.CanonicalHeaderKey(name)
		switch k {
		case "Host", "Content-Length", "Te", "User-Agent", "X-Forwarded-For", "X-Forwarded-Host",
			"X-Forwarded-Proto", "Forwarded":
			return // set by the proxy
		}
		if got := r.Header.Values(k); len(got) != 1 || got[0] != strings.Trim(value, " \t") {
			t.Fatalf("field %s read back as %q from %q, want [%q]", k, got, wire, value)
		}
	})
}
