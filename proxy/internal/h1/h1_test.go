package h1

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 27},
		{"GET / HTTP/1.1\nHost: a\n\nbody", 24},
		{"GET / HTTP/1.1\r\nHost: a\n\r\n", 26},
		{"GET / HTTP/1.1\r\nHost: a\r\n", -1},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r", -1},
		{"", -1},
	} {
		if got := HeadEnd([]byte(tc.in), 0); got != tc.want {
			t.Errorf("HeadEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	// A later call that starts where an earlier one stopped finds the end
	// that straddles the two reads.
	b := []byte("GET / HTTP/1.1\r\nHost: a\r\n")
	if HeadEnd(b, 0) != -1 {
		t.Fatal("incomplete head ended")
	}
	b = append(b, "\r\n"...)
	if got := HeadEnd(b, 25); got != 27 {
		t.Errorf("resumed HeadEnd = %d, want 27", got)
	}
}

func TestParseField(t *testing.T) {
	f, err := ParseField([]byte("Content-Length: \t12 "))
	if err != nil || string(f.Name) != "Content-Length" || string(f.Value) != "12" || f.Kind != KindContentLength {
		t.Errorf("got %+v, %v", f, err)
	}
	for _, bad := range []string{": x", "X A: b", "X-A b", "X-A: a\rb", "X-A: \x01", "X-A: \x7f", "X@: b"} {
		if _, err := ParseField([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseField(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestHeaderKind(t *testing.T) {
	for name, want := range map[string]Kind{
		"te": KindTe, "HOST": KindHost, "Proxy-Connection": KindHop, "Keep-Alive": KindHop,
		"x-forwarded-for": KindXFF, "X-Idempotency-Key": KindIdemKey, "X-Meridian-Region": KindRegion,
		"Transfer-Encoding": KindTransferEncoding, "X-Other": KindOther, "Hosts": KindOther,
	} {
		if got := HeaderKind([]byte(name)); got != want {
			t.Errorf("HeaderKind(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestConnTokens(t *testing.T) {
	var c ConnTokens
	if !c.Add([]byte(" Close ,, X-A")) || !c.Close || c.Keep || c.N != 2 || !c.Lists([]byte("x-a")) || c.Lists([]byte("x-b")) {
		t.Errorf("got %+v", c)
	}
	c = ConnTokens{}
	if c.Add([]byte(strings.Repeat("a,", MaxConnTokens+1))) {
		t.Error("too many tokens taken")
	}
}

func TestLengthAndHex(t *testing.T) {
	if n, ok := ParseLength([]byte("0012")); !ok || n != 12 {
		t.Errorf("ParseLength = %d, %v", n, ok)
	}
	for _, bad := range []string{"", "+1", "1 ", "-1", "0x1", strings.Repeat("9", 19)} {
		if _, ok := ParseLength([]byte(bad)); ok {
			t.Errorf("ParseLength(%q) taken", bad)
		}
	}
	if n, ok := ParseHex([]byte("fF")); !ok || n != 255 {
		t.Errorf("ParseHex = %d, %v", n, ok)
	}
	for _, bad := range []string{"", "g", "0x1", strings.Repeat("f", 16), strings.Repeat("0", 17)} {
		if _, ok := ParseHex([]byte(bad)); ok {
			t.Errorf("ParseHex(%q) taken", bad)
		}
	}
}

func TestCleanTargetAndHost(t *testing.T) {
	for target, want := range map[string]bool{
		"/": true, "/a/b;c?x=1&y=%2F": true, "/%2f": true, "/a b": false, "/%zz": false, "/%2": false,
		"a": false, "": false, "/?a;b": false, "/?a#b": false, "/a#b": false, "/é": false,
		"http://a/": false, "*": false,
	} {
		if got := CleanTarget([]byte(target)); got != want {
			t.Errorf("CleanTarget(%q) = %v, want %v", target, got, want)
		}
	}
	for host, want := range map[string]bool{
		"a.example": true, "a.example:80": true, "[::1]:8": true, "a_b": true,
		"": false, "a b": false, "a/b": false, "a@b": false,
	} {
		if got := ValidHost([]byte(host)); got != want {
			t.Errorf("ValidHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestRequestParse(t *testing.T) {
	var rq Request
	head := "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close, X-A\r\nX-A: 1\r\n" +
		"X-B: 2\r\nTE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n"
	if !rq.Parse([]byte(head)) {
		t.Fatal("not taken")
	}
	if rq.Method != MethodPost || rq.Method.Idempotent() || rq.Method.Name() != "POST" || string(rq.Host) != "a" ||
		rq.CLen != 3 || !rq.Conn.Close || !rq.TETrailers || !rq.XFF {
		t.Errorf("parsed %+v", rq)
	}
	if got := string(rq.AppendEndToEnd(nil)); got != "X-B: 2\r\nTe: trailers\r\n" {
		t.Errorf("end-to-end fields %q", got)
	}
	if got := string(rq.AppendValues(nil, KindXFF, ", ")); got != "1.2.3.4, 5.6.7.8" {
		t.Errorf("values %q", got)
	}
	if got := rq.Values(nil, KindXFF); len(got) != 2 || got[1] != "5.6.7.8" {
		t.Errorf("Values %q", got)
	}
	for _, bad := range []string{
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-forwarded-for\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", MaxHeaders) + "\r\n",
	} {
		if rq.Parse([]byte(bad)) {
			t.Errorf("took %q", bad)
		}
	}
}

func TestScreenRequest(t *testing.T) {
	for head, want := range map[string]Framing{
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n":                                   FramingOK,
		"POST / HTTP/1.1\nHost: a\ntransfer-encoding: chunked\nContent-Length: 5\n\n":               FramingCLAndTE,
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n": FramingCLAndTE,
		"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n":                          FramingTE10,
		"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n":                                                 FramingHostDiff,
		"GET http://u@A/x HTTP/1.1\r\nHost: a\r\n\r\n":                                              FramingOK,
	} {
		if got := ScreenRequest([]byte(head)); got != want {
			t.Errorf("ScreenRequest(%q) = %v, want %v", head, got, want)
		}
	}
}

func TestResponseParse(t *testing.T) {
	var rs Response
	var plain []byte
	head := "HTTP/1.0 200 OK\nContent-Type: text/event-stream\nX-A: a\n\tb\nConnection: keep-alive, X-C\nX-C: 1\n\n"
	if err := ParseResponse(&rs, &plain, []byte(head)); err != nil {
		t.Fatal(err)
	}
	if rs.Code != 200 || !rs.HTTP10 || !rs.Stream || rs.Size != len(head) || rs.Mode(false) != BodyClose ||
		rs.Reusable(BodyClose) || rs.Mode(true) != BodyNone || !rs.Reusable(BodyNone) {
		t.Errorf("parsed %+v", rs)
	}
	got := string(rs.AppendHead(nil, BodyClose, "eu", nil, false))
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "X-A: a b\r\n", "X-Meridian-Region: eu\r\n",
		"Transfer-Encoding: chunked\r\n", "Date: "} {
		if !strings.Contains(got, want) {
			t.Errorf("head %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "X-C") || strings.Contains(got, "Connection") {
		t.Errorf("head %q keeps a hop-by-hop field", got)
	}
	for _, bad := range []string{
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\n X-A: a\r\n\r\n",
	} {
		if err := ParseResponse(&rs, &plain, []byte(bad)); !errors.Is(err, ErrBadResponse) {
			t.Errorf("ParseResponse(%q) = %v", bad, err)
		}
	}
	if got := string(AppendStatus(nil, 599)); got != "HTTP/1.1 599 status code 599\r\n" {
		t.Errorf("AppendStatus(599) = %q", got)
	}
}

func TestChunked(t *testing.T) {
	if line, ok, err := ChunkLine([]byte("a;x=y\r\nrest")); !ok || err != nil || string(line) != "a;x=y" {
		t.Errorf("ChunkLine = %q, %v, %v", line, ok, err)
	}
	if _, ok, err := ChunkLine([]byte("a")); ok || err != nil {
		t.Errorf("incomplete line: %v, %v", ok, err)
	}
	for _, bad := range []string{"a\n", "\n", "a\rb\r\n", strings.Repeat("0", MaxChunkLine)} {
		if _, _, err := ChunkLine([]byte(bad)); !errors.Is(err, ErrBadChunk) {
			t.Errorf("ChunkLine(%q) = %v", bad, err)
		}
	}
	if n, _, err := ChunkSize([]byte("1F;ext=1 \t"), 0); err != nil || n != 31 {
		t.Errorf("ChunkSize = %d, %v", n, err)
	}
	if _, _, err := ChunkSize([]byte("x"), 0); !errors.Is(err, ErrBadChunk) {
		t.Errorf("ChunkSize(x) = %v", err)
	}
	// Many tiny chunks with long extensions run over the overhead bound.
	var excess int64
	var err error
	line := []byte("1;" + strings.Repeat("x", 1000))
	for i := 0; i < 100 && err == nil; i++ {
		_, excess, err = ChunkSize(line, excess)
	}
	if !errors.Is(err, ErrBadChunk) {
		t.Errorf("overhead %d not refused", excess)
	}
	if f, keep, err := Trailer([]byte("X-T: 1")); err != nil || !keep || !bytes.Equal(f.Value, []byte("1")) {
		t.Errorf("Trailer = %+v, %v, %v", f, keep, err)
	}
	for _, name := range []string{"Content-Length", "Authorization", "Host", "Transfer-Encoding"} {
		if _, keep, err := Trailer([]byte(name + ": 1")); err != nil || keep {
			t.Errorf("trailer %s: kept %v, %v", name, keep, err)
		}
	}
	for _, bad := range []string{" X: 1", "X 1"} {
		if _, _, err := Trailer([]byte(bad)); !errors.Is(err, ErrBadChunk) {
			t.Errorf("Trailer(%q) = %v", bad, err)
		}
	}
}
