package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestFrameRequest(t *testing.T) {
	tests := []struct {
		head string
		want Framed
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Framed{}},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", Framed{Body: BodyLengthReq, Len: 12, POST: true}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", Framed{}},
		{"PUT / HTTP/1.1\nHost: a\ntransfer-encoding:  Chunked \n\n", Framed{Body: BodyChunkedReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", Framed{Body: BodyChunkedReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 7\r\n \r\n\r\n", Framed{Body: BodyLengthReq, Len: 7}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length:  7\r\n\r\n", Framed{Body: BodyLengthReq, Len: 7}},
		{"PUT / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", Framed{Body: BodyLengthReq, Len: 3}},
		{"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", Framed{Switch: true}},
		{"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Framed{Switch: true}},
		// What net/http refuses or does not frame this way.
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 07\r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n 8\r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: +7\r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"PRI * HTTP/2.0\r\n\r\n", Framed{Body: BodyUnknownReq}},
		{"GET /\r\n\r\n", Framed{Body: BodyUnknownReq}},
	}
	for _, tc := range tests {
		if got := FrameRequest([]byte(tc.head)); got != tc.want {
			t.Errorf("FrameRequest(%q) = %+v, want %+v", tc.head, got, tc.want)
		}
	}
}

// track feeds body to a tracker in pieces of size step, as a reader that
// holds back what it cannot pass on yet would: it returns where the body
// ended (done) or broke (err), or how far it got.
func track(body []byte, step int) (end int, done bool, err error) {
	var t ChunkTracker
	avail := 0
	for {
		n, done, err := t.Next(body[end:avail])
		end += n
		if done || err != nil {
			return end, done, err
		}
		if avail == len(body) {
			return end, false, nil
		}
		avail = min(avail+step, len(body))
	}
}

func TestChunkTracker(t *testing.T) {
	for _, body := range []string{
		"0\r\n\r\n",
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
		"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
	} {
		want := strings.Index(body, "0\r\n") // the last chunk
		want += strings.Index(body[want:], "\r\n\r\n") + 4
		for step := 1; step <= len(body); step++ {
			if end, done, err := track([]byte(body), step); !done || err != nil || end != want {
				t.Errorf("%q in steps of %d: end %d done %v err %v, want end %d", body, step, end, done, err, want)
			}
		}
	}
	for _, bad := range []string{
		"5\nhello\r\n0\r\n\r\n",          // bare LF
		"5\r\nhelloX\r\n0\r\n\r\n",       // data longer than its size
		"5 ;x\r\nhello\r\n0\r\n\r\n",     // white space before an extension
		"-1\r\nhello\r\n0\r\n\r\n",       // no hex
		"3\r\nabc\r\n0\r\nX: a\n\r\n",    // a trailer ended by a bare LF
		"3\r\nabc\r\n0\r\n X: a\r\n\r\n", // a folded trailer
		"1;" + strings.Repeat("e", MaxChunkLine) + "\r\nx\r\n0\r\n\r\n",
		"0\r\n" + strings.Repeat("X-A: 1\r\n", MaxChunkLine/8) + "\r\n",
	} {
		for step := 1; step <= len(bad); step += 3 {
			if _, done, err := track([]byte(bad), step); done || err == nil {
				t.Errorf("%q in steps of %d: done %v err %v, want ErrBadChunk", bad, step, done, err)
			}
		}
	}
}

// netHTTPBody reads a chunked request body with net/http; it returns how
// many bytes of body it consumed, or an error.
func netHTTPBody(body []byte) (int, error) {
	const head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	src := bytes.NewReader(append([]byte(head), body...))
	br := bufio.NewReaderSize(src, 4096) // as net/http's server reads
	r, err := http.ReadRequest(br)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return 0, err
	}
	return len(body) - br.Buffered() - src.Len(), nil
}

// FuzzChunkTracker: where the tracker finds a chunked body complete,
// net/http finds it complete at the same byte; where the tracker refuses
// it, net/http refuses the part the tracker passed followed by Poison;
// the tracker never waits for more when net/http has the whole body; and
// how the bytes arrive changes nothing.
func FuzzChunkTracker(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-A: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"3\r\nabc\r\n0\r\nX: a\n\r\n",
		"3\r\nabc\r\n0\r\n\r\n0\r\n\r\n",
		"3\r\nab\rc\r\n0\r\n\r\n",
		"fffffffffffffffff\r\n",
		"0\r\n\r",
	} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		end, done, err := track(body, len(body)+1)
		if e2, d2, err2 := track(body, int(step%32)+1); e2 != end || d2 != done || (err2 == nil) != (err == nil) {
			t.Fatalf("%q: whole: end %d done %v err %v; in steps of %d: end %d done %v err %v",
				body, end, done, err, step%32+1, e2, d2, err2)
		}
		got, nerr := netHTTPBody(body)
		switch {
		case done && (nerr != nil || got != end):
			t.Fatalf("%q: tracker ends the body at %d, net/http at %d (err %v)", body, end, got, nerr)
		case err != nil:
			var tr ChunkTracker
			n, _, _ := tr.Next(body[:end])
			if n != end {
				t.Fatalf("%q: the tracker passes %d bytes, then %d on its own", body, end, n)
			}
			poisoned := append(append([]byte(nil), body[:end]...), tr.Poison()...)
			if _, perr := netHTTPBody(poisoned); perr == nil {
				t.Fatalf("%q: net/http takes %q", body, poisoned)
			}
		case !done && nerr == nil:
			t.Fatalf("%q: net/http reads the body (%d bytes), the tracker waits for more at %d", body, got, end)
		}
	})
}

// FuzzFrameRequest: a head net/http reads is framed the way net/http
// frames it, or not followed at all.
func FuzzFrameRequest(f *testing.F) {
	for _, s := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n",
		"PUT / HTTP/1.1\nHost: a\ntransfer-encoding:  Chunked \n\n",
		"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 7\r\n \r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length:  7\r\n\r\n",
		"PUT / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"PUT / HTTP/1.5\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		n := HeadEnd(head, 0)
		if n < 0 {
			return
		}
		head = head[:n]
		fr := FrameRequest(head)
		if fr.Body == BodyUnknownReq {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			return // net/http refuses it and reads no further
		}
		chunked := len(r.TransferEncoding) > 0
		switch {
		case fr.Body == BodyChunkedReq && !chunked,
			fr.Body != BodyChunkedReq && chunked:
			t.Fatalf("%q: chunked %v, net/http %v", head, fr.Body == BodyChunkedReq, r.TransferEncoding)
		case fr.Body == BodyLengthReq && r.ContentLength != fr.Len,
			fr.Body == BodyNoneReq && r.ContentLength != 0:
			t.Fatalf("%q: framed %+v, net/http length %d", head, fr, r.ContentLength)
		case fr.POST != (r.Method == "POST"):
			t.Fatalf("%q: POST %v, net/http method %q", head, fr.POST, r.Method)
		}
	})
}
