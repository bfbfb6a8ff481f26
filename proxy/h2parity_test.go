package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// HTTP/1.1 and HTTP/2 clients of the same TLS listener get the same
// answers: TestPathParity's requests and TestPathParityMisbehaving's
// upstreams, each sent by an HTTP/1.1 client (ALPN http/1.1) and by an
// HTTP/2 one (ALPN h2). What HTTP/2 frames differently is compared by
// meaning: hop-by-hop and connection-specific fields are not sent in
// HTTP/2 (the request's are left out, the response's ignored), the body
// is compared whole whatever framed it, and trailers as trailers.

// h2ParityKnown are the cases where an HTTP/2 client may get another
// answer than an HTTP/1.1 client, by case name, with why. None today.
var h2ParityKnown = map[string]string{}

// h1Hop are the response fields that belong to an HTTP/1.1 connection
// and that HTTP/2 has no place for.
var h1Hop = []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Proxy-Connection", "Upgrade", "Content-Length", "Date"}

// clientView is what a client saw of one response, in a form that
// compares across protocols.
func clientView(status int, header, trailer http.Header, body string) string {
	h := header.Clone()
	for _, k := range h1Hop {
		h.Del(k)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %q\n", status, body)
	_ = h.Write(&b)
	if len(trailer) > 0 {
		b.WriteString("trailers:\n")
		_ = trailer.Write(&b)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\r\n")
	slices.Sort(lines[1:])
	return strings.Join(lines, "\n")
}

// h2FromRaw turns a raw HTTP/1.1 request into the HTTP/2 request a
// client would send for it: connection-specific fields (and those
// Connection names) left out, TE kept only as "trailers", no User-Agent
// or Accept-Encoding added.
func h2FromRaw(t *testing.T, s *h2Server, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("parsing %q: %v", raw, err)
	}
	body, _ := io.ReadAll(r.Body)
	var rd io.Reader
	if len(body) > 0 || r.ContentLength == 0 && r.Header.Get("Content-Length") != "" {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequest(r.Method, s.url(h2TLS, "")+r.RequestURI, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.ContentLength = int64(len(body))
	}
	req.Host = r.Host
	req.Header = r.Header.Clone()
	for _, c := range r.Header.Values("Connection") {
		for f := range strings.SplitSeq(c, ",") {
			req.Header.Del(strings.TrimSpace(f))
		}
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Content-Length"} {
		req.Header.Del(k)
	}
	if te := strings.ToLower(r.Header.Get("Te")); strings.Contains(te, "trailers") {
		req.Header.Set("Te", "trailers")
	} else {
		req.Header.Del("Te")
	}
	if _, ok := r.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // none, as in the raw request
	}
	return req
}

// h1TLS opens an HTTP/1.1 connection to the TLS listener.
func (s *h2Server) h1TLS(t *testing.T) *rawClient {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.addr[h2TLS],
		&tls.Config{RootCAs: s.roots, ServerName: "example.com", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// h2ParityClient is an HTTP/2-only client of the TLS listener that adds
// nothing of its own to requests.
func (s *h2Server) h2ParityClient() *http.Client {
	tr := s.transport(h2TLS)
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestPathParityH2: every request of TestPathParity, sent over HTTP/1.1
// and over HTTP/2 to the same TLS listener, reaches the upstream alike
// and gets the same answer.
func TestPathParityH2(t *testing.T) {
	answers := parityAnswers()
	requests := parityRequests(answers)
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
	s := serveH2(t, cfg)
	c2 := s.h2ParityClient()
	for _, rq := range requests {
		t.Run(rq.name, func(t *testing.T) {
			if why, ok := h2ParityKnown[rq.name]; ok {
				t.Skip(why)
			}
			method, _, _ := strings.Cut(rq.raw, " ")
			h2req := h2FromRaw(t, s, rq.raw)
			c1 := s.h1TLS(t)
			resp1, body1 := c1.do(method, rq.raw)
			up1 := ""
			if resp1.StatusCode != http.StatusMisdirectedRequest && resp1.StatusCode != http.StatusBadGateway {
				up1 = normalHead(up.last())
			}
			resp2, err := c2.Do(h2req)
			if err != nil {
				t.Fatalf("HTTP/2: %v", err)
			}
			b2, err := io.ReadAll(resp2.Body)
			resp2.Body.Close()
			if err != nil {
				t.Fatalf("HTTP/2: reading the body: %v", err)
			}
			if resp2.ProtoMajor != 2 {
				t.Fatalf("the client spoke %s", resp2.Proto)
			}
			up2 := ""
			if resp2.StatusCode != http.StatusMisdirectedRequest && resp2.StatusCode != http.StatusBadGateway {
				up2 = normalHead(up.last())
			}
			if v1, v2 := clientView(resp1.StatusCode, resp1.Header, resp1.Trailer, body1),
				clientView(resp2.StatusCode, resp2.Header, resp2.Trailer, string(b2)); v1 != v2 {
				t.Errorf("the client got\n--- HTTP/1.1\n%s\n--- HTTP/2\n%s", v1, v2)
			}
			if up1 != up2 {
				t.Errorf("the upstream got\n--- from HTTP/1.1\n%s\n--- from HTTP/2\n%s", up1, up2)
			}
		})
	}
}

// TestPathParityMisbehavingH2: for every misbehaving upstream of
// TestPathParityMisbehaving, an HTTP/2 client gets what an HTTP/1.1
// client of the same TLS listener gets: status, body, X-A, trailer X-T,
// whether the body was cut short, 1xx responses, and a second client
// served.
func TestPathParityMisbehavingH2(t *testing.T) {
	for _, mc := range misbehavingCases() {
		t.Run(mc.name, func(t *testing.T) {
			if why, ok := h2ParityKnown[mc.name]; ok {
				t.Skip(why)
			}
			h1 := misbehaveTLS(t, mc, false)
			h2 := misbehaveTLS(t, mc, true)
			if h1 != h2 {
				t.Errorf("the client got\n--- HTTP/1.1\n%s--- HTTP/2\n%s", h1, h2)
			}
		})
	}
}

// misbehaveTLS runs one misbehaving case against a proxy's TLS listener
// with an HTTP/1.1 or an HTTP/2 client and returns what the clients saw,
// in the form misbehave writes.
func misbehaveTLS(t *testing.T, mc misbehaving, useH2 bool) string {
	t.Helper()
	up, taken, wrote := misbehavingUpstream(t, mc)
	s := serveH2(t, cannedConfig(up.URL))
	method := mc.method
	if method == "" {
		method = http.MethodGet
	}
	var out strings.Builder
	line := func(code int, body []byte, xa, xt string, cut bool) {
		fmt.Fprintf(&out, "%d %q X-A=%q X-T=%q", code, body, xa, xt)
		if cut {
			out.WriteString(" cut short")
		}
		out.WriteString("\n")
	}
	if useH2 {
		c := s.h2ParityClient()
		req := s.request(h2TLS, method, testHost, "/", nil)
		req.Header["User-Agent"] = []string{""}
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			line(code, nil, h.Get("X-A"), "", false)
			return nil
		}}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := c.Do(req)
		if err != nil {
			out.WriteString("no response\n")
		} else {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil && len(body) == 0 {
				out.WriteString("no response\n")
			} else {
				line(resp.StatusCode, body, resp.Header.Get("X-A"), resp.Trailer.Get("X-T"), err != nil)
			}
		}
	} else {
		c := s.h1TLS(t)
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
				out.WriteString("no response\n")
				break
			}
			line(resp.StatusCode, body, resp.Header.Get("X-A"), resp.Trailer.Get("X-T"), err != nil)
			if resp.StatusCode >= 200 {
				break
			}
		}
	}
	if mc.idle != "" {
		close(taken)
		<-wrote
	}
	// The second client, on a new connection of the same protocol.
	second := "/second"
	var code int
	var body string
	if useH2 {
		time.Sleep(100 * time.Millisecond) // as misbehave: what the idle upstream sent is noticed
		resp, err := s.h2ParityClient().Do(s.request(h2TLS, http.MethodGet, testHost, second, nil))
		if err != nil {
			t.Fatalf("second client: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, body = resp.StatusCode, string(b)
	} else {
		time.Sleep(100 * time.Millisecond)
		resp, b := s.h1TLS(t).get(testHost, second)
		code, body = resp.StatusCode, b
	}
	if code != 200 || body != second {
		fmt.Fprintf(&out, "second client: %d %q\n", code, body)
	}
	return out.String()
}
