package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawClient speaks HTTP/1.1 to the proxy over one connection, byte for byte.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (c *rawClient) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("writing request: %v", err)
	}
}

// rawReply is a response read in full.
type rawReply struct {
	StatusCode       int
	Header, Trailer  http.Header
	Close            bool
	ContentLength    int64
	TransferEncoding []string
}

// read reads one response to a request with method and its whole body.
func (c *rawClient) read(method string) (rawReply, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading body: %v", err)
	}
	return rawReply{
		StatusCode: resp.StatusCode, Header: resp.Header, Trailer: resp.Trailer, Close: resp.Close,
		ContentLength: resp.ContentLength, TransferEncoding: resp.TransferEncoding,
	}, string(b)
}

// do sends raw and reads its response.
func (c *rawClient) do(method, raw string) (rawReply, string) {
	c.t.Helper()
	c.send(raw)
	return c.read(method)
}

// get sends a GET for path to host.
func (c *rawClient) get(host, path string) (rawReply, string) {
	c.t.Helper()
	return c.do(http.MethodGet, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
}

// closed reports whether the proxy closed the connection (EOF or reset)
// within d.
func (c *rawClient) closed(d time.Duration) bool {
	c.t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		c.t.Fatal(err)
	}
	_, err := c.br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// cannedUpstream is a raw HTTP/1.1 server: for every request it reads
// (head and Content-Length body), answer returns the bytes to write and
// whether to close the connection afterwards. It counts connections and
// requests.
type cannedUpstream struct {
	URL      string
	conns    atomic.Int64
	requests atomic.Int64
	closedN  atomic.Int64 // connections it closed
	mu       sync.Mutex
	last     *http.Request
	lastBody string
}

func newCannedUpstream(t testing.TB, answer func(r *http.Request) (string, bool)) *cannedUpstream {
	t.Helper()
	u := &cannedUpstream{}
	u.URL = serveRaw(t, func(c net.Conn) {
		u.conns.Add(1)
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(r.Body) // a broken body shows as a short one
			u.requests.Add(1)
			u.mu.Lock()
			u.last, u.lastBody = r, string(body)
			u.mu.Unlock()
			resp, closeAfter := answer(r)
			if _, err := io.WriteString(c, resp); err != nil || closeAfter {
				return
			}
		}
	}, func() { u.closedN.Add(1) })
	return u
}

// serveRaw accepts connections on a loopback listener until the test ends
// and serves each in its own goroutine: a connection is closed when serve
// returns (then closed, if set, is called), and every open one when the
// test ends. It returns the listener's http:// URL.
func serveRaw(t testing.TB, serve func(c net.Conn), closed func()) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					if closed != nil {
						closed()
					}
				}()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

func (u *cannedUpstream) lastRequest() (*http.Request, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last, u.lastBody
}

// always answers every request with resp.
func always(resp string) func(*http.Request) (string, bool) {
	return func(*http.Request) (string, bool) { return resp, false }
}

// byPath answers from a table by request path, "" for anything else.
func byPath(answers map[string]string) func(*http.Request) (string, bool) {
	return func(r *http.Request) (string, bool) {
		if a, ok := answers[r.URL.Path]; ok {
			return a, strings.HasSuffix(r.URL.Path, "-close")
		}
		return answers[""], false
	}
}

// heldUpstream is an upstream whose /slow requests wait until release is
// closed, arrived being closed when the first one came; anything else is
// answered "done" at once.
func heldUpstream(t *testing.T) (url string, arrived, release chan struct{}) {
	t.Helper()
	arrived, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			once.Do(func() { close(arrived) })
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	return srv.URL, arrived, release
}

// shutdownAsync runs p.Shutdown with a deadline d away; its result
// arrives on the channel returned.
func shutdownAsync(p *Proxy, d time.Duration) chan error {
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		shut <- p.Shutdown(ctx)
	}()
	return shut
}

// pending fails t when shut delivers within wait: Shutdown returned with
// something still in flight.
func pending(t testing.TB, shut chan error, wait time.Duration) {
	t.Helper()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(wait): // a negative check needs some time
	}
}
