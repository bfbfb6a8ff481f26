package fastpath

import (
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// A connection handed to net/http stays there for the rest of its life,
// and net/http frames a request with both Content-Length and
// Transfer-Encoding by the latter and keeps the connection open: the
// request smuggling the fast path refuses. So every request that follows
// on a handed connection is screened on the way in, with the rules the
// fast path applies to the request it hands over (h1.ScreenRequest): the
// screener follows the stream as net/http frames it (h1.FrameRequest,
// h1.ChunkTracker), passes each head only once it is whole and allowed,
// and each body as it comes. A refused head never reaches net/http: it
// reads, in its place, a request line it answers with its own 400 and
// Connection: close before closing, after the responses to the requests
// before it, as the fast path answers. After a request that may switch
// protocols (an upgrade, CONNECT) the bytes that follow are held until
// net/http either serves the next request (they are HTTP) or hands the
// connection to a handler (they are not, and pass as they are); an h2c
// preface at the start passes too.
//
// A head held until it is whole is not one net/http's header timeout
// runs on, as it waits for its first bytes with the idle timeout: the
// screener cuts a head at the header timeout from when net/http waits for
// it, as the fast path does.

// refusedLine is what net/http reads in place of a refused request head:
// no request line, so it answers 400 with Connection: close and closes.
const refusedLine = "REFUSED\r\n\r\n"

// h2cPreface starts an HTTP/2 connection with prior knowledge, which
// net/http takes on cleartext when it is the first thing on it.
const h2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// What the screener expects next.
type screenState uint8

const (
	scrHead    screenState = iota // a request head
	scrBody                       // left bytes of a Content-Length body
	scrChunked                    // a chunked body
	scrSwitch                     // whatever follows a request that may switch protocols
	scrPass                       // not HTTP/1 any more: everything passes
	scrEnd                        // nothing more for net/http after what is due
)

// screener reads a handed connection for net/http. Only net/http's reads
// drive it, one at a time; connState may come from another goroutine.
type screener struct {
	src io.Reader
	// buf[r:ok] is screened and due to net/http, buf[ok:w] is still to be
	// screened; scan is how far a head end was looked for past ok.
	buf         []byte
	r, ok, w    int
	scan        int
	st          screenState
	left        int64 // of a Content-Length body
	chunks      h1.ChunkTracker
	switching   bool   // the current request may switch protocols
	afterPOST   bool   // net/http skips CR and LF bytes before the next head
	started     bool   // bytes went to net/http: no h2c preface any more
	h2c         bool   // cleartext, where net/http takes an h2c preface
	inject      string // due after buf[r:ok], in place of everything else
	err         error  // a read error held back while bytes were due
	maxHead     int    // beyond this a head is net/http's to refuse (431)
	heads       int64  // heads passed to net/http
	switchAfter int64  // in scrSwitch: the head that may switch protocols

	idle     atomic.Int64 // requests net/http finished keeping the connection
	hijacked atomic.Bool  // a handler took the connection from net/http
	cut      atomic.Bool  // the stream was cut short: the connection closes
	// The header timeout: deadline sets net/http's read deadlines, the
	// last of which is dl; headSince is when net/http began waiting for
	// the head at ok.
	deadline   interface{ SetReadDeadline(time.Time) error }
	readHeader time.Duration
	headSince  time.Time
	dmu        sync.Mutex
	dl         time.Time

	log  *slog.Logger // for refusals, at debug level; nil for none
	peer string

	// badBody: a chunked body broke the tracker's rules, which are
	// stricter than net/http's in one place: a trailer line must end in
	// CRLF, where net/http takes a bare LF too.
	badBody bool
}

// init sets the screener up on src, with the bytes already read from it,
// for a server with the given limits.
func (s *screener) init(src io.Reader, read []byte, cleartext bool, maxHeaderBytes int, readHeader time.Duration) {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	s.src, s.h2c, s.readHeader = src, cleartext, readHeader
	s.deadline, _ = src.(interface{ SetReadDeadline(time.Time) error })
	// net/http reads up to MaxHeaderBytes and 4 KiB of slack for a head,
	// and its reader may hold 4 KiB more: a longer head it refuses.
	s.maxHead = maxHeaderBytes + 8<<10
	s.buf = make([]byte, max(4<<10, len(read)))
	s.w = copy(s.buf, read)
}

// connState learns from net/http what became of the connection.
func (s *screener) connState(st http.ConnState) {
	switch st {
	case http.StateIdle:
		s.idle.Add(1)
	case http.StateHijacked:
		s.hijacked.Store(true)
	}
}

func (s *screener) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch {
		case s.ok > s.r:
			n := copy(p, s.buf[s.r:s.ok])
			s.r += n
			s.started = true
			if s.r == s.w && len(s.buf) > 16<<10 {
				s.buf, s.r, s.ok, s.w = make([]byte, 4<<10), 0, 0, 0 // a large head's buffer is not kept
			}
			return n, nil
		case s.inject != "":
			n := copy(p, s.inject)
			s.inject = s.inject[n:]
			s.started = true
			return n, nil
		case s.st == scrEnd:
			return 0, io.EOF
		case s.st == scrPass && s.r == s.w:
			return s.src.Read(p)
		case s.st != scrPass && s.hijacked.Load():
			s.st, s.ok = scrPass, s.w // a handler speaks whatever it likes now
			continue
		}
		if s.step() {
			continue
		}
		if s.err != nil {
			err := s.err
			s.err = nil
			return 0, err
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads more of the connection into buf.
func (s *screener) fill() error {
	if s.r > 0 {
		s.ok -= s.r
		s.w = copy(s.buf, s.buf[s.r:s.w])
		s.r = 0
	}
	if s.w == len(s.buf) {
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
	}
	tight := s.tighten()
	n, err := s.src.Read(s.buf[s.w:])
	if tight {
		s.dmu.Lock()
		_ = s.deadline.SetReadDeadline(s.dl) // failing, the next read fails too
		s.dmu.Unlock()
	}
	s.w += n
	if err != nil && n > 0 {
		s.err, err = err, nil // after what these bytes make due
	}
	return err
}

// tighten moves the read deadline up to the header timeout of a head
// that is not whole yet, when net/http waits for it with a later one; it
// reports whether it did. A read without a deadline is net/http's read in
// the background while a handler runs: the head's clock starts when
// net/http waits for it.
func (s *screener) tighten() bool {
	if s.deadline == nil || s.readHeader <= 0 || s.st != scrHead || s.w == s.ok {
		return false
	}
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.dl.IsZero() {
		return false
	}
	if s.headSince.IsZero() {
		s.headSince = time.Now()
	}
	d := s.headSince.Add(s.readHeader)
	if !d.Before(s.dl) {
		return false
	}
	_ = s.deadline.SetReadDeadline(d) // failing, the read goes on to net/http's deadline
	return true
}

// setReadDeadline is net/http setting a read deadline.
func (s *screener) setReadDeadline(t time.Time) error {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.dl = t
	if s.deadline == nil {
		return nil
	}
	return s.deadline.SetReadDeadline(t)
}

// step screens what it can of buf[ok:w]; false when it needs more bytes.
func (s *screener) step() bool {
	switch s.st {
	case scrHead:
		return s.head()
	case scrBody:
		k := min(s.left, int64(s.w-s.ok))
		if k == 0 {
			return false
		}
		s.ok += int(k)
		if s.left -= k; s.left == 0 {
			s.bodyDone()
		}
		return true
	case scrChunked:
		n, done, err := s.chunks.Next(s.buf[s.ok:s.w])
		s.ok += n
		switch {
		case err != nil:
			s.badBody = true
			s.end(s.chunks.Poison()) // net/http refuses the body where the tracker did
		case done:
			s.bodyDone()
		default:
			return n > 0
		}
		return true
	case scrSwitch:
		switch {
		case s.idle.Load() >= s.switchAfter:
			s.st = scrHead // net/http served it and reads the next request
		case s.w-s.ok > s.maxHead:
			s.end("") // too much sent before the switch was decided
		default:
			return false
		}
		return true
	}
	return false
}

// head screens the request head at ok once it is whole.
func (s *screener) head() bool {
	b := s.buf[s.ok:s.w]
	if len(b) == 0 {
		return false
	}
	if s.h2c && !s.started {
		k := min(len(b), len(h2cPreface))
		if string(b[:k]) == h2cPreface[:k] {
			if k < len(h2cPreface) {
				return false
			}
			s.st, s.ok = scrPass, s.w
			return true
		}
	}
	if s.afterPOST {
		// net/http peeks at 4 bytes and skips the CRs and LFs among them.
		k := 0
		for k < len(b) && k < 4 && (b[k] == '\r' || b[k] == '\n') {
			k++
		}
		if k == len(b) && k < 4 {
			return false
		}
		s.afterPOST = false
		s.ok += k
		return true
	}
	if b[0] == '\r' || b[0] == '\n' {
		s.refuse("an empty request line") // which net/http refuses too
		return true
	}
	n := h1.HeadEnd(b, s.scan)
	if n < 0 {
		if len(b) > s.maxHead {
			s.ok = s.w
			s.end("") // net/http answers 431
			return true
		}
		s.scan = len(b)
		return false
	}
	s.scan, s.headSince = 0, time.Time{}
	head := b[:n]
	if why := h1.ScreenRequest(head); why != h1.FramingOK {
		s.refuse(why.String())
		return true
	}
	fr := h1.FrameRequest(head)
	s.ok += n
	s.heads++
	s.afterPOST, s.switching = fr.POST, fr.Switch
	switch fr.Body {
	case h1.BodyUnknownReq:
		s.end("") // net/http refuses it, or frames it in a way not followed
	case h1.BodyLengthReq:
		s.st, s.left = scrBody, fr.Len
	case h1.BodyChunkedReq:
		s.st, s.chunks = scrChunked, h1.ChunkTracker{}
	default:
		s.bodyDone()
	}
	return true
}

// bodyDone moves on after a request's body.
func (s *screener) bodyDone() {
	s.st = scrHead
	if s.switching {
		s.st, s.switchAfter = scrSwitch, s.heads
	}
}

// end makes inject the last bytes net/http reads after what is due; the
// client's bytes after them are read and dropped when the connection
// closes, so that its answer is not lost to a reset.
func (s *screener) end(inject string) {
	s.st, s.inject, s.w = scrEnd, inject, s.ok
	s.cut.Store(true)
}

// refuse replaces the head at ok, and all that follows, with a request
// line net/http refuses.
func (s *screener) refuse(reason string) {
	if s.log != nil {
		s.log.Debug("request refused", "peer", s.peer, "reason", reason, "handed", true)
	}
	s.end(refusedLine)
}

// SetReadDeadline sets the connection's read deadline; the screener
// keeps it, as it may move it up for a head's header timeout.
func (h *handedConn) SetReadDeadline(t time.Time) error { return h.scr.setReadDeadline(t) }

// SetDeadline sets both deadlines, the read one as SetReadDeadline does.
func (h *handedConn) SetDeadline(t time.Time) error {
	err := h.scr.setReadDeadline(t)
	if werr := h.SetWriteDeadline(t); err == nil {
		err = werr
	}
	return err
}
