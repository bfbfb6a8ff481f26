package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// headRecorder is a raw upstream that records each request head as it
// arrived and answers with canned responses chosen by the request's
// X-Answer field.
type headRecorder struct {
	URL   string
	mu    sync.Mutex
	heads []string
}

func newHeadRecorder(t *testing.T, answers map[string]string) *headRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hr := &headRecorder{URL: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head bytes.Buffer
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head.Bytes())))
					if err != nil {
						return
					}
					if r.ContentLength > 0 {
						if _, err := io.CopyN(io.Discard, br, r.ContentLength); err != nil {
							return
						}
					}
					hr.mu.Lock()
					hr.heads = append(hr.heads, head.String())
					hr.mu.Unlock()
					answer := answers[r.Header.Get("X-Answer")]
					if r.Method == http.MethodHead {
						answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
					}
					if _, err := io.WriteString(c, answer); err != nil || r.Header.Get("X-Answer") == "nolength" {
						return // that body ends with the connection
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return hr
}

func (hr *headRecorder) last() string {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	return hr.heads[len(hr.heads)-1]
}

// normalHead puts a message head in a form that ignores what may differ
// without meaning: field order, name case, the Date value.
func normalHead(head string) string {
	lines := strings.Split(strings.TrimRight(head, "\r\n"), "\r\n")
	fields := lines[1:]
	for i, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		name = strings.ToLower(name)
		if name == "date" {
			value = " (date)"
		}
		fields[i] = name + ":" + value
	}
	slices.Sort(fields)
	return lines[0] + "\n" + strings.Join(fields, "\n")
}

// TestPathParity sends the same requests through both paths and compares
// what the upstream got and what the client got.
func TestPathParity(t *testing.T) {
	answers := parityAnswers()
	requests := parityRequests(answers)

	type seen struct{ upstream, client string }
	results := map[servePath]map[string]seen{}
	forPaths(t, func(t *testing.T, path servePath) {
		up := newHeadRecorder(t, answers)
		trusting := proxyService("edge", []string{"edge.example.com"}, "eu")
		trusting.Proxy.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		cfg := &config.Config{
			Regions: []config.Region{testRegion("eu", up.URL), testRegion("based", up.URL+"/base/?k=v"),
				testRegion("dead", deadURL(t))},
			Services: []config.Service{proxyService("api", []string{testHost}, "eu"), trusting,
				proxyService("based", []string{"based.example.com"}, "based"),
				proxyService("dead", []string{"dead.example.com"}, "dead")},
		}
		hs := newHarness(t, cfg, path)
		results[path] = map[string]seen{}
		for _, rq := range requests {
			c := dialRaw(t, hs.addr)
			method, _, _ := strings.Cut(rq.raw, " ")
			resp, body := c.do(method, rq.raw)
			var client strings.Builder
			client.WriteString(strconv.Itoa(resp.StatusCode) + " " + string(body) + "\r\n")
			framing := "length " + strconv.FormatInt(resp.ContentLength, 10) +
				" te " + strings.Join(resp.TransferEncoding, ",")
			if len(body) == 0 && resp.ContentLength <= 0 {
				// An empty body of unknown length reaches the client as
				// "Content-Length: 0" or as an empty chunked body on the
				// net/http path, depending on whether the upstream's close
				// arrives before the first flush: both frame the same
				// empty body.
				framing = "empty body"
				resp.Header.Del("Content-Length")
			}
			_ = resp.Header.Write(&client)
			_ = resp.Trailer.Write(&client)
			client.WriteString(framing)
			results[path][rq.name] = seen{upstream: normalHead(up.last()), client: normalHead(client.String())}
		}
		hs.checkFast(path)
	})
	for _, rq := range requests {
		slow, fast := results[slowPath][rq.name], results[fastPath][rq.name]
		if slow.upstream != fast.upstream {
			t.Errorf("%s: the upstream got\n--- slow\n%s\n--- fast\n%s", rq.name, slow.upstream, fast.upstream)
		}
		if slow.client != fast.client {
			t.Errorf("%s: the client got\n--- slow\n%s\n--- fast\n%s", rq.name, slow.client, fast.client)
		}
	}
}

// misbehaving is an upstream answer for TestPathParityMisbehaving: answer
// is written to the first request (the connection then closes when
// closeAfter is set); idle is written once the client has its answer,
// and the connection closes after it when idleClose is set. Later
// requests get a plain 200 whose body is their path.
type misbehaving struct {
	name, method string
	answer       string
	closeAfter   bool
	idle         string
	idleClose    bool
	stray        bool // the upstream sends bytes nobody asked for
}

// TestPathParityMisbehaving: both paths answer alike when the upstream
// misbehaves: bytes after a response, a 408 and close on an idle
// connection, bare-LF line ends, folded fields, malformed chunked bodies,
// a Content-Length longer or shorter than the body, a body after a HEAD
// response, 1xx responses, a 204 or 304 with a body. A second client on a
// new connection then gets its own answer.
func TestPathParityMisbehaving(t *testing.T) {
	cases := misbehavingCases()
	results := map[servePath]map[string]string{}
	forPaths(t, func(t *testing.T, path servePath) {
		results[path] = map[string]string{}
		for _, mc := range cases {
			results[path][mc.name] = misbehave(t, path, mc)
		}
	})
	for _, mc := range cases {
		if slow, fast := results[slowPath][mc.name], results[fastPath][mc.name]; slow != fast {
			t.Errorf("%s: the client got\n--- slow\n%s\n--- fast\n%s", mc.name, slow, fast)
		}
	}
}

// misbehavingUpstream is the upstream of one misbehaving case: it answers
// the first request of a connection with mc.answer and, once taken is
// closed, writes mc.idle on the idle connection and sends on wrote; later
// requests get pathResponse.
func misbehavingUpstream(t *testing.T, mc misbehaving) (up *wireUpstream, taken, wrote chan struct{}) {
	t.Helper()
	taken, wrote = make(chan struct{}), make(chan struct{}, 1)
	up = newWireUpstream(t, func(c net.Conn, r *http.Request, n int64) bool {
		if n > 1 {
			_, err := io.WriteString(c, pathResponse(r))
			return err == nil
		}
		if _, err := io.WriteString(c, mc.answer); err != nil || mc.closeAfter {
			return false
		}
		if mc.idle == "" {
			return true
		}
		select {
		case <-taken:
		case <-time.After(10 * time.Second):
			return false
		}
		_, err := io.WriteString(c, mc.idle)
		wrote <- struct{}{}
		return err == nil && !mc.idleClose
	})
	return up, taken, wrote
}

// misbehave runs one case of TestPathParityMisbehaving and returns what
// the clients saw.
func misbehave(t *testing.T, path servePath, mc misbehaving) string {
	t.Helper()
	up, taken, wrote := misbehavingUpstream(t, mc)
	h := newHarness(t, cannedConfig(up.URL), path)
	method := mc.method
	if method == "" {
		method = http.MethodGet
	}
	var out strings.Builder
	c := dialRaw(t, h.addr)
	c.send(method + " / HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	for {
		resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
		if err != nil {
			out.WriteString("no response\n")
			break
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil && len(body) == 0 {
			// A response that broke off before any of its body: net/http
			// sends its head or not, depending on whether a flush timer
			// fired first.
			out.WriteString("no response\n")
			break
		}
		fmt.Fprintf(&out, "%d %q X-A=%q X-T=%q", resp.StatusCode, body, resp.Header.Get("X-A"), resp.Trailer.Get("X-T"))
		if err != nil {
			out.WriteString(" cut short")
		}
		out.WriteString("\n")
		if resp.StatusCode >= 200 {
			break
		}
	}
	if mc.idle != "" {
		close(taken)
		<-wrote
	}
	// net/http's transport notices what an idle connection receives in a
	// goroutine of its own, and may hand the connection to the next
	// request before it does: wait until it dropped the connection, or
	// (when the upstream closed it) give it a moment, as nothing outside
	// shows when it is done.
	switch {
	case path == slowPath && mc.stray:
		waitFor(t, "net/http to drop the connection", 5*time.Second, func() bool { return up.eofs.Load() > 0 })
	case path == slowPath && mc.idleClose:
		time.Sleep(100 * time.Millisecond)
	}
	if resp, body := dialRaw(t, h.addr).get(testHost, "/second"); resp.StatusCode != 200 || body != "/second" {
		fmt.Fprintf(&out, "second client: %d %q\n", resp.StatusCode, body)
	}
	return out.String()
}

// parityRequest is a request of TestPathParity, as raw HTTP/1.1.
type parityRequest struct{ name, raw string }

// parityAnswers are the upstream's answers of TestPathParity, chosen by
// the request's X-Answer field.
func parityAnswers() map[string]string {
	return map[string]string{
		"": okResponse,
		"hop": "HTTP/1.1 200 OK\r\nConnection: X-Up-Secret, keep-alive\r\nX-Up-Secret: 1\r\nKeep-Alive: timeout=5\r\n" +
			"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Meridian-Region: spoofed\r\nX-Kept: a\r\nX-Kept: b\r\n" +
			"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok",
		"chunked":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
		"nolength":  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\n",
		"204":       "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
		"304":       "HTTP/1.1 304 Not Modified\r\nContent-Type: text/html\r\nEtag: \"x\"\r\nContent-Length: 9\r\n\r\n",
		"503":       "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
		"status599": "HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n",
		"sniff":     "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n%PDF-1.4 hello",
		"trailerCL": "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nContent-Length: 2\r\n\r\nok",
	}
}

// parityRequests are the requests of TestPathParity: every answer is
// asked for too.
func parityRequests(answers map[string]string) []parityRequest {
	h := "Host: " + testHost + "\r\n"
	requests := []parityRequest{
		{"plain GET", "GET /a/b?x=1&y=%20z HTTP/1.1\r\n" + h + "User-Agent: t/1\r\nAccept: */*\r\n\r\n"},
		{"no User-Agent", "GET / HTTP/1.1\r\n" + h + "\r\n"},
		{"two User-Agents", "GET / HTTP/1.1\r\n" + h + "User-Agent: one\r\nUser-Agent: two\r\n\r\n"},
		{"empty User-Agent", "GET / HTTP/1.1\r\n" + h + "User-Agent:\r\n\r\n"},
		{"hop-by-hop", "GET / HTTP/1.1\r\n" + h + "Connection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n" +
			"Proxy-Authorization: x\r\nProxy-Connection: keep-alive\r\nTe: trailers, deflate\r\nTrailer: X\r\nX-Kept: 1\r\nX-Kept: 2\r\n\r\n"},
		{"Te without trailers", "GET / HTTP/1.1\r\n" + h + "Te: gzip\r\n\r\n"},
		{"forwarding from an untrusted peer", "GET / HTTP/1.1\r\n" + h + "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: evil\r\n" +
			"X-Forwarded-Proto: https\r\nForwarded: for=1.2.3.4\r\n\r\n"},
		{"forwarding from a trusted peer", "GET / HTTP/1.1\r\nHost: edge.example.com:8080\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n" +
			"X-Forwarded-For: 9.9.9.9\r\nX-Forwarded-Host: a\r\nX-Forwarded-Host: b\r\nX-Forwarded-Proto: https\r\n" +
			"Forwarded: for=1.2.3.4\r\nForwarded: for=5.6.7.8\r\n\r\n"},
		{"trusted peer, no prior fields", "GET / HTTP/1.1\r\nHost: edge.example.com\r\n\r\n"},
		{"POST with body", "POST /p HTTP/1.1\r\n" + h + "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
		{"empty POST", "POST /p HTTP/1.1\r\n" + h + "\r\n"},
		{"DELETE", "DELETE /d HTTP/1.1\r\n" + h + "\r\n"},
		{"OPTIONS", "OPTIONS /o HTTP/1.1\r\n" + h + "\r\n"},
		{"PUT with zero length", "PUT /p HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n"},
		{"GET with a body", "GET /g HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc"},
		{"escaped path", "GET /a%2Fb/%7Ec!$&'()*+,;=:@[]/?q=%2F&r=%C3%A9 HTTP/1.1\r\n" + h + "\r\n"},
		{"base path endpoint", "GET /v1/x?q=2 HTTP/1.1\r\nHost: based.example.com\r\n\r\n"},
		{"base path, escaped", "GET /v1/a%2Fb HTTP/1.1\r\nHost: based.example.com\r\n\r\n"},
		{"odd whitespace", "GET / HTTP/1.1\r\nHost:   " + testHost + "  \r\nX-A:\t1 \t\r\nX-B:\r\n\r\n"},
		{"idempotency key", "POST / HTTP/1.1\r\n" + h + "Idempotency-Key: k\r\nContent-Length: 1\r\n\r\nx"},
		{"HEAD", "HEAD / HTTP/1.1\r\n" + h + "\r\n"},
		{"unknown host: 421", "GET / HTTP/1.1\r\nHost: nobody.example.com\r\n\r\n"},
		{"refusing upstream: 502", "GET / HTTP/1.1\r\nHost: dead.example.com\r\n\r\n"},
	}
	for name := range answers {
		if name != "" {
			requests = append(requests, parityRequest{"answer " + name,
				"GET / HTTP/1.1\r\n" + h + "X-Answer: " + name + "\r\n\r\n"})
		}
	}

	return requests
}

// misbehavingCases is the corpus of TestPathParityMisbehaving.
func misbehavingCases() []misbehaving {
	const te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	return []misbehaving{
		{name: "stray response with the answer", answer: okResponse + strayResponse, stray: true},
		{name: "stray response later", answer: okResponse, idle: strayResponse, stray: true},
		{name: "stray bytes later", answer: okResponse, idle: "garbage\r\n", stray: true},
		{name: "408 and close while idle", answer: okResponse, idle: timeout408, idleClose: true},
		{name: "bare-LF head", answer: "HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\nok"},
		{name: "bare-LF head, chunked", answer: "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\r\nok\r\n0\r\n\r\n"},
		{name: "folded field", answer: "HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\nContent-Length: 2\r\n\r\nok"},
		{name: "folded Transfer-Encoding", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{name: "fold onto the status line", answer: "HTTP/1.1 200 OK\r\n X-A: 1\r\nContent-Length: 2\r\n\r\nok"},
		{name: "bare CR in a field", answer: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok"},
		{name: "chunked and Content-Length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{name: "bare-LF chunk line", answer: te + "2\nok\r\n0\r\n\r\n", closeAfter: true},
		{name: "CR in a chunk extension", answer: te + "2;a=\rb\r\nok\r\n0\r\n\r\n", closeAfter: true},
		{name: "chunk extension", answer: te + "2;a=b\r\nok\r\n0\r\n\r\n"},
		{name: "bad chunk size", answer: te + "0x2\r\nok\r\n0\r\n\r\n", closeAfter: true},
		{name: "chunk without CRLF", answer: te + "2\r\nokX0\r\n\r\n", closeAfter: true},
		{name: "malformed trailer", answer: te + "2\r\nok\r\n0\r\nX-T 1\r\n\r\n", closeAfter: true},
		{name: "trailer", answer: te + "2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"},
		{name: "Content-Length longer than the body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok", closeAfter: true},
		{name: "Content-Length shorter than the body", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokextra", stray: true},
		{name: "HEAD answered with a body", method: http.MethodHead, answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", stray: true},
		{name: "HEAD answered with a chunked body", method: http.MethodHead, answer: te + "2\r\nok\r\n0\r\n\r\n", stray: true},
		{name: "103 then 200", answer: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + okResponse},
		{name: "100 then 200", answer: "HTTP/1.1 100 Continue\r\n\r\n" + okResponse},
		{name: "only 1xx", answer: "HTTP/1.1 103 Early Hints\r\n\r\n", closeAfter: true},
		{name: "204 with a body", answer: "HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nok", stray: true},
		{name: "304 with a body", answer: "HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\nok", stray: true},
		{name: "204 with a chunked body", answer: "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", stray: true},
		{name: "two Content-Lengths", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", closeAfter: true},
		{name: "HTTP/1.0 without length", answer: "HTTP/1.0 200 OK\r\n\r\nuntil close", closeAfter: true},
	}
}
