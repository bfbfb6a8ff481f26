package h1

import "testing"

// TestNoAllocations: parsing and writing heads, as the fast path does for
// every request, allocates nothing once a Response's field slice has grown.
func TestNoAllocations(t *testing.T) {
	req := []byte("GET /a?b=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: x\r\nConnection: keep-alive\r\n" +
		"X-Forwarded-For: 1.2.3.4\r\nAccept: */*\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n")
	var rq Request
	var rs Response
	var plain []byte
	buf := make([]byte, 0, 4096)
	if err := ParseResponse(&rs, &plain, resp); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if HeadEnd(req, 0) != len(req) || !rq.Parse(req) || ScreenRequest(req) != FramingOK {
			t.Fatal("request not taken")
		}
		b := rq.AppendEndToEnd(buf[:0])
		b = rq.AppendValues(b, KindXFF, ", ")
		if err := ParseResponse(&rs, &plain, resp); err != nil {
			t.Fatal(err)
		}
		b = rs.AppendHead(b, rs.Mode(false), "eu", nil, false)
		if _, _, err := ChunkSize([]byte("1f;x"), 0); err != nil {
			t.Fatal(err)
		}
		buf = b
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
}
