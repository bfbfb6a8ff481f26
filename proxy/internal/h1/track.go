package h1

// The rules below follow a stream of requests the way net/http's server
// reads it, so that a reader in front of net/http can tell where each
// request head and body ends without parsing the requests itself.

// BodyKind is how net/http delimits a request's body.
type BodyKind uint8

// The body kinds.
const (
	BodyNoneReq    BodyKind = iota // no body: the next request follows the head
	BodyLengthReq                  // Content-Length bytes
	BodyChunkedReq                 // a chunked body and its trailers
	// BodyUnknownReq: net/http refuses the head (a bad or empty
	// Content-Length, duplicates that differ, a transfer coding other than
	// chunked, a version other than HTTP/1.x) or frames it in a way not
	// followed here; nothing after the head can be told apart.
	BodyUnknownReq
)

// Framed is a request head as net/http's server frames it.
type Framed struct {
	Body BodyKind
	Len  int64 // for BodyLengthReq
	// POST: the method is POST, after which net/http skips up to four
	// CR or LF bytes before the next request line.
	POST bool
	// Switch: the request may switch the connection to another protocol
	// (an Upgrade field, or CONNECT): what follows it may not be HTTP.
	Switch bool
}

// FrameRequest frames a complete request head (with its empty line, as
// HeadEnd delimits it) the way net/http's server does: lines end in LF
// with an optional CR, folded lines continue their field, Content-Length
// is digits and the same in every field, and Transfer-Encoding, in
// HTTP/1.1 and later, is a single "chunked" that wins over
// Content-Length. Heads net/http would refuse, or frame otherwise, are
// BodyUnknownReq.
func FrameRequest(head []byte) Framed {
	var fr Framed
	line, rest := splitLine(head)
	sp := indexByte(line, ' ')
	if sp < 0 {
		return Framed{Body: BodyUnknownReq}
	}
	method := line[:sp]
	fr.POST = string(method) == "POST"
	fr.Switch = string(method) == "CONNECT"
	line = line[sp+1:]
	sp = indexByte(line, ' ')
	if sp < 0 {
		return Framed{Body: BodyUnknownReq}
	}
	proto := line[sp+1:]
	if len(proto) != len("HTTP/1.1") || string(proto[:len("HTTP/1.")]) != "HTTP/1." || proto[7] < '0' || proto[7] > '9' {
		return Framed{Body: BodyUnknownReq} // HTTP/0.9, HTTP/2.0 (the preface) and garbage
	}
	http11 := proto[7] != '0'

	var cl, te fieldValue
	var first []byte // the first Content-Length value
	nCL, nTE, clBad := 0, 0, false
	var cur *fieldValue // the field the next folded line continues
	endCL := func() {
		switch {
		case !cl.one():
			clBad = true // empty, or a space inside
		case nCL == 1:
			first = cl.val
		case string(first) != string(cl.val):
			clBad = true // net/http refuses values that differ
		}
	}
	for len(rest) > 0 {
		line, rest = splitLine(rest)
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if cur != nil {
				cur.add(line)
			}
			continue
		}
		if cur == &cl {
			endCL()
		}
		cur = nil
		if len(line) == 0 {
			break
		}
		colon := indexByte(line, ':')
		if colon < 0 {
			return Framed{Body: BodyUnknownReq}
		}
		switch HeaderKind(line[:colon]) {
		case KindContentLength:
			cl = fieldValue{}
			cl.add(line[colon+1:])
			nCL++
			cur = &cl
		case KindTransferEncoding:
			te = fieldValue{}
			te.add(line[colon+1:])
			nTE++
			cur = &te
		case KindUpgrade:
			fr.Switch = true
		}
	}
	if cur == &cl {
		endCL() // a head without its empty line
	}
	if clBad {
		return Framed{Body: BodyUnknownReq} // net/http checks it even when chunked wins
	}
	if nTE > 0 && http11 {
		if nTE > 1 || !te.one() || !EqualFold(te.val, "chunked") {
			return Framed{Body: BodyUnknownReq} // net/http answers 501
		}
		fr.Body = BodyChunkedReq
		return fr
	}
	if nCL == 0 {
		return fr
	}
	n, ok := parseUint63(first)
	if !ok {
		return Framed{Body: BodyUnknownReq}
	}
	if n > 0 {
		fr.Body, fr.Len = BodyLengthReq, n
	}
	return fr
}

// fieldValue is a field's value put together from its lines as
// net/http's textproto reader joins them (trimmed pieces, one space
// between): it is kept only while it is one piece, as a value of two
// pieces has a space inside and no Content-Length or coding is valid then.
type fieldValue struct {
	val    []byte
	pieces int
}

func (v *fieldValue) add(piece []byte) {
	if piece = TrimOWS(piece); len(piece) > 0 {
		v.val = piece
		v.pieces++
	}
}

// one reports whether the value is a single non-empty piece.
func (v *fieldValue) one() bool { return v.pieces == 1 }

// parseUint63 parses digits into a value below 1<<63, as
// strconv.ParseUint(s, 10, 63) does.
func parseUint63(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63-1 {
			return 0, false
		}
	}
	return int64(n), true
}

// ChunkTracker follows a chunked request body, bytes at a time, as
// net/http's chunked reader and its trailer reading take it, but
// stricter: chunk-size lines (ChunkLine, ChunkSize), the CRLF after each
// chunk's data, and a trailer section of CRLF-ended field lines (Trailer)
// of at most MaxChunkLine bytes, which net/http reads only if its end is
// that close. The zero value is at the start of a body.
type ChunkTracker struct {
	stage  chunkStage
	left   int64 // data bytes left in the chunk
	excess int64
}

type chunkStage uint8

const (
	stageSize    chunkStage = iota // a chunk-size line
	stageData                      // chunk data
	stageDataEnd                   // the CRLF after the data
	stageTrailer                   // the trailer section (an empty line at least)
	stageDone
)

// Next follows the body on from where earlier calls left it, b being the
// bytes after those they consumed. It returns how many bytes of b belong
// to the body and are checked, and done once the body is complete,
// trailers included. Only whole chunk-size lines, whole CRLFs and a whole
// trailer section are consumed, so a body broken by ErrBadChunk is broken
// at the start of what is left, where Poison applies.
func (t *ChunkTracker) Next(b []byte) (n int, done bool, err error) {
	for {
		switch t.stage {
		case stageDone:
			return n, true, nil
		case stageSize:
			line, ok, err := ChunkLine(b[n:])
			if err != nil || !ok {
				return n, false, err
			}
			size, excess, err := ChunkSize(line, t.excess)
			if err != nil {
				return n, false, err
			}
			t.excess = excess
			n += len(line) + 2
			if size == 0 {
				t.stage = stageTrailer
			} else {
				t.left, t.stage = size, stageData
			}
		case stageData:
			k := min(t.left, int64(len(b)-n))
			if k == 0 {
				return n, false, nil
			}
			n += int(k)
			if t.left -= k; t.left == 0 {
				t.stage = stageDataEnd
			}
		case stageDataEnd:
			switch {
			case len(b)-n >= 1 && b[n] != '\r', len(b)-n >= 2 && b[n+1] != '\n':
				return n, false, ErrBadChunk
			case len(b)-n < 2:
				return n, false, nil
			}
			n += 2
			t.stage = stageSize
		case stageTrailer:
			k, err := trailerSection(b[n:])
			if err != nil || k == 0 {
				return n, false, err
			}
			n += k
			t.stage = stageDone
		}
	}
}

// trailerSection returns the length of the trailer section at the start
// of b, up to and including its empty line, or 0 while it is incomplete.
func trailerSection(b []byte) (int, error) {
	for n := 0; ; {
		if n >= MaxChunkLine {
			return 0, ErrBadChunk // net/http does not look this far for its end
		}
		line, ok, err := ChunkLine(b[n:])
		if err != nil || !ok {
			return 0, err
		}
		n += len(line) + 2
		if len(line) == 0 {
			if n > MaxChunkLine {
				return 0, ErrBadChunk
			}
			return n, nil
		}
		if _, _, err := Trailer(line); err != nil {
			return 0, err
		}
	}
}

// Done reports whether the body is complete.
func (t *ChunkTracker) Done() bool { return t.stage == stageDone }

// Poison returns bytes which, read by net/http in place of what follows
// the consumed part of a body, make it refuse the body where the tracker
// refused it: an invalid chunk size, a chunk not ended by CRLF, or a
// malformed trailer section.
func (t *ChunkTracker) Poison() string {
	switch t.stage {
	case stageDataEnd:
		return "xx"
	case stageTrailer:
		return " x\r\n\r\n"
	}
	return "x\r\n"
}
