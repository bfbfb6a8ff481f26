package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/summerwind/h2spec/config"
	"github.com/summerwind/h2spec/generic"
	"github.com/summerwind/h2spec/hpack"
	h2spechttp2 "github.com/summerwind/h2spec/http2"
	"github.com/summerwind/h2spec/spec"
)

// h2specKnown are the h2spec cases (by ID, group section/sequence, and
// "@mode" when only one way of reaching the proxy is concerned) that are
// not run, with why. Every other case of h2spec's generic, http2 and
// hpack suites, strict ones included, must pass.
var h2specKnown = map[string]string{
	// The cleartext listener serves HTTP/1.1 too: a connection whose
	// first bytes are not the HTTP/2 preface is an HTTP/1.1 one, and h2spec's
	// "invalid preface" gets an HTTP/1.1 400 and a close, which its frame
	// reader cannot tell from a frame. Over TLS, where ALPN chose h2, the
	// case runs.
	"http2/3.5/2@h2c": "the cleartext port serves HTTP/1.1 as well: a wrong preface is an HTTP/1.1 request (400 and close)",
}

// TestH2Spec runs every server-side case of h2spec (generic, http2 and
// hpack: the connection preface, frame sizes, stream states and
// identifiers, flow control, SETTINGS validation and synchronisation,
// HPACK decoding errors, CONTINUATION rules, pseudo-header and
// connection-specific header rules, GOAWAY, RST_STREAM, PING, PRIORITY)
// against the proxy's listeners, over TLS with ALPN h2 and over h2c,
// each case as a subtest on a connection of its own. The requests reach
// a real upstream through the proxy.
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance suite runs a few hundred connections")
	}
	// Some flow-control cases need a response body of a few bytes at
	// least; 1000 bytes fit in any window.
	body := strings.Repeat("h2spec ", 1000/7)
	up := upstream(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) })
	s := serveH2(t, h2Config(up.URL))
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		host, port, err := net.SplitHostPort(s.addr[mode])
		if err != nil {
			t.Fatal(err)
		}
		pn, _ := strconv.Atoi(port)
		c := &config.Config{
			Host: host, Port: pn, Path: "/", MaxHeaderLen: 4000, Strict: true,
			TLS: mode == h2TLS, Insecure: true, // the certificate is for example.com
			// How long a case waits for the server's answer. Only
			// failing cases wait it out, but a loaded machine may be slow
			// to answer the rest.
			Timeout: 5 * time.Second,
		}
		start := time.Now()
		ran := 0
		for _, g := range []*spec.TestGroup{generic.Spec(), h2spechttp2.Spec(), hpack.Spec()} {
			ran += runH2SpecGroup(t, c, string(mode), g)
		}
		t.Logf("%d h2spec cases in %v", ran, time.Since(start).Round(time.Millisecond))
		if ran < 140 {
			t.Errorf("ran %d h2spec cases, want all of them (more than 140)", ran)
		}
	})
}

// runH2SpecGroup runs the cases of g and its subgroups as subtests named
// by their h2spec ID (section/sequence) and returns how many ran.
func runH2SpecGroup(t *testing.T, c *config.Config, mode string, g *spec.TestGroup) int {
	t.Helper()
	ran := 0
	id := g.ID()
	for i, tc := range append(append([]*spec.TestCase(nil), g.Tests...), g.StrictTests...) {
		caseID := fmt.Sprintf("%s/%d", id, i+1)
		t.Run(caseID, func(t *testing.T) {
			if why, ok := h2specKnown[caseID]; ok {
				t.Skip(why)
			}
			if why, ok := h2specKnown[caseID+"@"+mode]; ok {
				t.Skip(why)
			}
			ran++
			conn, err := spec.Dial(c)
			if err != nil {
				t.Fatalf("%s: dialing: %v", tc.Desc, err)
			}
			defer conn.Close()
			err = tc.Run(c, conn)
			switch {
			case err == nil:
			case errors.Is(err, spec.ErrSkipped):
				// h2spec skips a case the server's answer gives it no
				// means to run: the suite must be set up so that none is.
				t.Errorf("%s: h2spec could not run it", tc.Desc)
			default:
				var te *spec.TestError
				if errors.As(err, &te) {
					t.Errorf("%s\n  requirement: %s\n  expected: %s\n  actual: %s", tc.Desc, tc.Requirement,
						strings.Join(te.Expected, " | "), te.Actual)
				} else {
					t.Errorf("%s\n  requirement: %s\n  error: %v", tc.Desc, tc.Requirement, err)
				}
			}
		})
	}
	for _, sub := range g.Groups {
		ran += runH2SpecGroup(t, c, mode, sub)
	}
	return ran
}

// TestH2ConnectionSpecificRefused: a request with a connection-specific
// field (RFC 9113 section 8.2.2) is malformed: the stream is reset with
// PROTOCOL_ERROR or answered 400, never forwarded, and the connection
// goes on serving.
func TestH2ConnectionSpecificRefused(t *testing.T) {
	up := &named{name: "up"}
	s := serveH2(t, h2Config(upstream(t, up.ServeHTTP).URL))
	fields := [][2]string{
		{"connection", "keep-alive"}, {"keep-alive", "timeout=5"}, {"proxy-connection", "keep-alive"},
		{"transfer-encoding", "chunked"}, {"upgrade", "h2c"}, {"te", "gzip"}, {"te", "trailers, gzip"},
	}
	forH2Modes(t, func(t *testing.T, mode h2Mode) {
		fc := s.dialFrames(t, mode)
		fc.handshake()
		before := up.count()
		id := uint32(1)
		for _, f := range fields {
			fc.get(id, testHost, "/", f[0], f[1])
			status, _, rst := fc.response(id)
			if status != http.StatusBadRequest && rst != http2.ErrCodeProtocol {
				t.Errorf("%s: %s: got status %d (reset %v), want RST_STREAM PROTOCOL_ERROR or 400", f[0], f[1], status, rst)
			}
			id += 2
		}
		if n := up.count() - before; n != 0 {
			t.Errorf("the upstream got %d malformed requests", n)
		}
		fc.get(id, testHost, "/", "te", "trailers")
		if status, body, rst := fc.response(id); status != 200 || string(body) != "up" {
			t.Errorf("a good request after them: got %d %q (reset %v), want 200 up", status, body, rst)
		}
	})
}
