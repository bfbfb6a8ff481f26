package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
)

// h2Harness is a fast-path harness for cfg with a client that speaks
// only HTTP/2 to it (net/http's Transport, whose HTTP/2 client is
// golang.org/x/net/http2's, bundled; x/net's own Transport type is
// deprecated in its favour).
type h2Harness struct {
	*harness
	h2     *http.Client
	scheme string
}

func newH2Harness(t testing.TB, cfg *config.Config, mode h2Mode, tweaks ...any) *h2Harness {
	t.Helper()
	var protos http.Protocols
	tr := &http.Transport{Protocols: &protos, DisableCompression: true, MaxConnsPerHost: 1}
	hh := &h2Harness{scheme: "http"}
	switch mode {
	case h2TLS:
		ln, tlsOn, roots := tlsListener(t)
		hh.harness = newHarness(t, cfg, append([]any{fastPath, ln, tlsOn}, tweaks...)...)
		protos.SetHTTP2(true) // ALPN offers h2 alone
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: "example.com"}
		hh.scheme = "https"
	case h2C:
		hh.harness = newHarness(t, cfg, append([]any{fastPath}, tweaks...)...)
		protos.SetUnencryptedHTTP2(true) // prior knowledge
	}
	hh.h2 = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return hh
}

// request builds an HTTP/2 request to the proxy for host.
func (hh *h2Harness) request(method, host, path string, body io.Reader) *http.Request {
	hh.t.Helper()
	req := hh.harness.request(method, host, path, body)
	req.URL.Scheme = hh.scheme
	return req
}

// h2Reply is a response read in full.
type h2Reply struct {
	StatusCode      int
	Header, Trailer http.Header
	ContentLength   int64
}

// do sends req over HTTP/2 and returns the response head and body.
func (hh *h2Harness) do(req *http.Request) (h2Reply, string) {
	hh.t.Helper()
	resp, err := hh.h2.Do(req)
	if err != nil {
		hh.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		hh.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	if resp.ProtoMajor != 2 {
		hh.t.Fatalf("got %s, want HTTP/2", resp.Proto)
	}
	return h2Reply{StatusCode: resp.StatusCode, Header: resp.Header, Trailer: resp.Trailer, ContentLength: resp.ContentLength}, string(b)
}

func (hh *h2Harness) get(host, path string) (h2Reply, string) {
	hh.t.Helper()
	return hh.do(hh.request(http.MethodGet, host, path, nil))
}

// fastIdle is the number of idle connections in the fast path's upstream
// pools: only the fast path (and ServePlain) puts connections there, never
// ReverseProxy's Transport.
func (h *harness) fastIdle() int {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	n := 0
	for _, st := range h.p.endpoints {
		n += st.fast.Idle()
	}
	return n
}
