package h1

import (
	"bytes"
	"errors"
)

// ErrBadChunk is the error for a chunked body that breaks a rule.
var ErrBadChunk = errors.New("proxy: malformed chunked body from upstream")

// MaxChunkLine bounds a chunk-size or trailer line with its CRLF, and all
// the trailer lines together, as net/http's reader does.
const MaxChunkLine = 4 << 10

// MaxChunkExcess bounds the chunked framing's overhead beyond what its
// data justifies, as net/http's chunked reader does: 16 bytes per chunk
// and twice its size are free.
const MaxChunkExcess = 16 << 10

// ChunkLine finds the line of a chunked body (a chunk size or a trailer)
// at the start of b, checked as net/http's chunked reader checks it: it
// returns the line without its CRLF and true, or nil and false while b
// holds no whole line yet. A line that ends in a bare LF, holds a CR, or
// is too long is ErrBadChunk.
func ChunkLine(b []byte) ([]byte, bool, error) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		if i == 0 || i+1 > MaxChunkLine || bytes.IndexByte(b[:i], '\r') != i-1 {
			return nil, false, ErrBadChunk
		}
		return b[:i-1], true, nil
	}
	if len(b) >= MaxChunkLine {
		return nil, false, ErrBadChunk
	}
	return nil, false, nil
}

// ChunkSize parses a chunk-size line (without its CRLF): a hex size,
// trailing white space and extensions ignored, as net/http ignores them.
// excess is the framing overhead so far beyond what the data justifies;
// ChunkSize returns it updated, and ErrBadChunk when it is too much.
func ChunkSize(line []byte, excess int64) (n, newExcess int64, err error) {
	size := line
	for len(size) > 0 && (size[len(size)-1] == ' ' || size[len(size)-1] == '\t') {
		size = size[:len(size)-1]
	}
	if i := bytes.IndexByte(size, ';'); i >= 0 {
		size = size[:i] // an extension: dropped, as net/http drops it
	}
	n, ok := ParseHex(size)
	if !ok {
		return 0, excess, ErrBadChunk
	}
	if excess = max(excess+int64(len(line))+2-16-2*n, 0); excess > MaxChunkExcess {
		return 0, excess, ErrBadChunk
	}
	return n, excess, nil
}

// Trailer parses a trailer line (not the empty one that ends them) and
// reports whether it is relayed: a folded or malformed line is
// ErrBadChunk, and the fields net/http's server leaves out of trailers are
// dropped.
func Trailer(line []byte) (Field, bool, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return Field{}, false, ErrBadChunk // a folded trailer
	}
	f, err := ParseField(line)
	if err != nil {
		return Field{}, false, ErrBadChunk
	}
	return f, AllowedTrailer(&f), nil
}

// AllowedTrailer reports whether a field may be sent as a trailer, as
// golang.org/x/net/http/httpguts.ValidTrailerHeader decides for net/http's
// server.
func AllowedTrailer(f *Field) bool {
	switch f.Kind {
	case KindOther, KindUserAgent, KindIdemKey, KindXFF, KindXFHost, KindXFProto, KindForwarded, KindDate, KindRegion:
	default:
		return false
	}
	for _, name := range [...]string{"authorization", "cache-control", "content-range", "max-forwards",
		"pragma", "range", "realm", "www-authenticate"} {
		if EqualFold(f.Name, name) {
			return false
		}
	}
	return true
}
