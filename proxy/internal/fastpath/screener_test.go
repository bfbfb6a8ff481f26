package fastpath

import (
	"io"
	"strings"
	"testing"
)

// memConn is a stream of bytes to screen.
type memConn struct{ b []byte }

func (m *memConn) Read(p []byte) (int, error) {
	if len(m.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, m.b)
	m.b = m.b[n:]
	return n, nil
}

// screenStream is requests of every framing, for the allocation test and
// the benchmark.
func screenStream(n int) []byte {
	var b strings.Builder
	for i := range n {
		switch i % 3 {
		case 0:
			b.WriteString("GET /a HTTP/1.1\r\nHost: " + "api.example.com" + "\r\nUser-Agent: x\r\n\r\n")
		case 1:
			b.WriteString("POST /b HTTP/1.1\r\nHost: " + "api.example.com" + "\r\nContent-Length: 5\r\n\r\nhello")
		default:
			b.WriteString("PUT /c HTTP/1.1\r\nHost: " + "api.example.com" + "\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\n\r\n")
		}
	}
	return []byte(b.String())
}

// TestScreenerAllocs: screening requests allocates nothing once the
// screener is set up.
func TestScreenerAllocs(t *testing.T) {
	stream := screenStream(30)
	var s screener
	s.init(&memConn{}, nil, true, 64<<10, 0)
	p := make([]byte, 4<<10)
	allocs := testing.AllocsPerRun(100, func() {
		s.src.(*memConn).b = stream
		s.st, s.started = scrHead, true
		total := 0
		for {
			n, err := s.Read(p)
			total += n
			if err != nil {
				break
			}
		}
		if total != len(stream) {
			t.Fatalf("read %d bytes, want %d", total, len(stream))
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per 30 requests, want 0", allocs)
	}
}

func BenchmarkScreener(b *testing.B) {
	stream := screenStream(300)
	var s screener
	s.init(&memConn{}, nil, true, 64<<10, 0)
	p := make([]byte, 4<<10)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		s.src.(*memConn).b = stream
		s.st, s.started = scrHead, true
		for {
			if _, err := s.Read(p); err != nil {
				break
			}
		}
	}
}
