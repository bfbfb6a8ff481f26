package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

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
	answers := map[string]string{
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
	h := "Host: " + testHost + "\r\n"
	requests := []struct{ name, raw string }{
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
			requests = append(requests, struct{ name, raw string }{"answer " + name,
				"GET / HTTP/1.1\r\n" + h + "X-Answer: " + name + "\r\n\r\n"})
		}
	}

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
