package fastpath

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// errWouldBlock ends a pieceReader: the client sent all it had and waits.
var errWouldBlock = errors.New("would block")

// pieceReader yields b in pieces of at most step bytes, then
// errWouldBlock.
type pieceReader struct {
	b    []byte
	step int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errWouldBlock
	}
	n := copy(p[:min(len(p), r.step)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// teeReader records what it reads.
type teeReader struct {
	r   io.Reader
	got []byte
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.got = append(t.got, p[:n]...)
	return n, err
}

// served is a request as net/http's server read it.
type served struct {
	method, uri, proto, body string
}

// serveStream reads requests from src the way net/http's server does (CR
// and LF skipped after a POST, each body read to its end) until one fails,
// closes the connection or is refused (the refuse func, given the raw
// head, when src reads raw); idle, if set, runs after each.
func serveStream(src io.Reader, raw []byte, refuse func(head []byte) bool, idle func()) []served {
	var out []served
	rd := bufio.NewReaderSize(src, 4096)
	consumed := func() int { return len(raw) - rd.Buffered() - src.(*bytes.Reader).Len() }
	last := ""
	for {
		if last == http.MethodPost {
			peek, _ := rd.Peek(4)
			k := 0
			for k < len(peek) && (peek[k] == '\r' || peek[k] == '\n') {
				k++
			}
			_, _ = rd.Discard(k)
		}
		if raw != nil {
			pos := consumed()
			if n := h1.HeadEnd(raw[pos:], 0); n >= 0 && refuse(raw[pos:pos+n]) {
				return out
			}
		}
		r, err := http.ReadRequest(rd)
		if err != nil || r.ProtoMajor != 1 {
			return out
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return out
		}
		out = append(out, served{r.Method, r.RequestURI, r.Proto, string(body)})
		if r.Close {
			return out
		}
		last = r.Method
		if idle != nil {
			idle()
		}
	}
}

// refusedFraming is the fast path's refusal, judged from the fields as
// net/http's textproto reader reads them, and h1.ScreenRequest's verdict
// on the rest (an absolute-form target naming another host).
func refusedFraming(head []byte) bool {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	line, err := tp.ReadLine()
	if err != nil {
		return false
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return false
	}
	_, te := hdr["Transfer-Encoding"]
	_, cl := hdr["Content-Length"]
	if te && (cl || strings.HasSuffix(line, " HTTP/1.0")) {
		return true
	}
	return h1.ScreenRequest(head) != h1.FramingOK
}

// FuzzHandedScreen: net/http reading a handed connection through the
// screener, however the bytes arrive, reads the same requests as from the
// bare stream, up to the first one the fast path refuses, and no further:
// never a head with both Content-Length and Transfer-Encoding (or
// Transfer-Encoding in HTTP/1.0), as its textproto reader sees the fields;
// and it is never left waiting for bytes the client has sent.
func FuzzHandedScreen(f *testing.F) {
	h := "Host: a\r\n"
	for _, s := range []string{
		"GET / HTTP/1.0\r\n" + h + "Connection: keep-alive\r\n\r\nPOST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /s HTTP/1.1\r\n" + h + "\r\n",
		"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nX: y\r\n\r\n\r\nGET /2 HTTP/1.1\r\n" + h + "\r\n",
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc\r\n\r\nPOST / HTTP/1.0\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /chat HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /2 HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n chunked\r\nContent-Length: 1\r\n\r\n",
		"PUT / HTTP/1.1\n" + "Host: a\nContent-Length: 2\nContent-Length: 2\n\nabGET http://b/ HTTP/1.1\r\n" + h + "\r\n",
		"PUT / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, raw []byte, step uint8) {
		if bytes.HasPrefix(raw, []byte("PRI")) {
			return // net/http takes an h2c preface at the start as HTTP/2
		}
		want := serveStream(bytes.NewReader(raw), raw, refusedFraming, nil)

		// The server reads the screened stream as it comes, telling the
		// screener of each request it finished.
		var s screener
		s.init(&pieceReader{b: raw, step: int(step%64) + 1}, nil, true, 1<<10, 0)
		tee := &teeReader{r: &s}
		got := serveStream(tee, nil, nil, func() { s.connState(http.StateIdle) })
		if len(got) < len(want) && !s.badBody {
			t.Fatalf("%q: net/http reads %d requests through the screener, %d bare (the screener waits)", raw, len(got), len(want))
		}
		for i := range got {
			if i >= len(want) || got[i] != want[i] {
				t.Fatalf("%q: request %d through the screener is %+v, bare %v", raw, i, got[i], want)
			}
		}
		// What net/http read holds no refused framing.
		d := tee.got
		for pos := 0; pos < len(d); {
			n := h1.HeadEnd(d[pos:], 0)
			if n < 0 {
				break
			}
			rd := bytes.NewReader(d[pos:])
			br := bufio.NewReaderSize(rd, 4096)
			r, err := http.ReadRequest(br)
			if err != nil {
				break // refused by net/http, which reads no further
			}
			if refusedFraming(d[pos : pos+n]) {
				t.Fatalf("%q: net/http read the refused head %q", raw, d[pos:pos+n])
			}
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				break
			}
			pos = len(d) - br.Buffered() - rd.Len()
			if r.Method == http.MethodPost {
				for k := 0; k < 4 && pos < len(d) && (d[pos] == '\r' || d[pos] == '\n'); k++ {
					pos++ // as net/http skips them
				}
			}
		}
	})
}
