package h2

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

var timeZero time.Time

// span locates a header field in a stream's raw bytes.
type span struct {
	set    bool
	ns     int32 // name start; the name ends where the value starts
	vs, ve int32
}

// Stream is one request and its response. The request's fields are valid
// until the handler returns; the handler alone calls the response
// methods, on one goroutine.
type Stream struct {
	c    *conn
	id   uint32
	cond sync.Cond // on c.mu: body bytes, window, reset

	// The request head, written by the reader before the handler starts.
	raw                             []byte
	fields                          []span
	method, scheme, authority, path span
	clen                            int64 // -1 when unknown
	endOnHeaders                    bool
	regular, bad, tooLarge          bool
	hsize                           int

	// Under c.mu.
	inMap        bool
	body         []byte
	bodyR        int
	bodyGone     bool // the handler will read no more
	recvWin      int64
	unacked      int64
	sendWin      int64
	nread        int64
	remoteClosed bool
	localDone    bool
	hasTrailers  bool
	traw         []byte
	tfields      []span
	rst          error
	done         chan struct{}
	readDeadline time.Time
	cancel       func() // called when the stream ends early
	waiting      bool   // in c.waiters

	// The response, the handler's own.
	hblock      []byte
	hstate      uint8
	interim     bool
	tblock      []byte
	pend        []byte
	ended       bool
	continue100 bool
}

// Response header states.
const (
	hsNone uint8 = iota
	hsBuilding
	hsSent
)

var streamPool = sync.Pool{New: func() any { return new(Stream) }}

func newStream(c *conn, id uint32) *Stream {
	s := streamPool.Get().(*Stream)
	s.c, s.id, s.clen = c, id, -1
	s.cond.L = &c.mu
	return s
}

func putStream(s *Stream) {
	raw, fields, body, traw, tfields, hblock, tblock, pend := s.raw[:0], s.fields[:0], s.body[:0], s.traw[:0], s.tfields[:0], s.hblock[:0], s.tblock[:0], s.pend[:0]
	if cap(body) > 64<<10 {
		body = nil
	}
	if cap(pend) > 64<<10 {
		pend = nil
	}
	if cap(raw) > 16<<10 {
		raw, traw = nil, nil
	}
	*s = Stream{raw: raw, fields: fields, body: body, traw: traw, tfields: tfields, hblock: hblock, tblock: tblock, pend: pend}
	streamPool.Put(s)
}

// ID is the stream's identifier.
func (s *Stream) ID() uint32 { return s.id }

func (s *Stream) value(p span) []byte { return s.raw[p.vs:p.ve:p.ve] }

// Method, Scheme, Authority and Path are the request's pseudo-header
// fields, empty when absent.
func (s *Stream) Method() []byte    { return s.value(s.method) }
func (s *Stream) Scheme() []byte    { return s.value(s.scheme) }
func (s *Stream) Authority() []byte { return s.value(s.authority) }
func (s *Stream) Path() []byte      { return s.value(s.path) }

// NumFields is the number of the request's regular header fields.
func (s *Stream) NumFields() int { return len(s.fields) }

// Field is the request's i-th regular header field; names are lowercase.
func (s *Stream) Field(i int) (name, value []byte) {
	f := s.fields[i]
	return s.raw[f.ns:f.vs:f.vs], s.raw[f.vs:f.ve:f.ve]
}

// ContentLength is the request's declared body length, or -1.
func (s *Stream) ContentLength() int64 { return s.clen }

// HasBody reports whether the request's HEADERS frame did not end it.
func (s *Stream) HasBody() bool { return !s.endOnHeaders }

// Info is what the connection knows of the client.
func (s *Stream) Info() *ConnInfo { return &s.c.info }

// NumTrailers and Trailer are the request's trailer fields, valid once
// Read returned io.EOF.
func (s *Stream) NumTrailers() int { return len(s.tfields) }

func (s *Stream) Trailer(i int) (name, value []byte) {
	f := s.tfields[i]
	return s.traw[f.ns:f.vs:f.vs], s.traw[f.vs:f.ve:f.ve]
}

// Done is closed when the stream is reset or its connection closes, and
// when the stream completed.
func (s *Stream) Done() <-chan struct{} {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
		if s.rst != nil || !s.inMap {
			close(s.done)
		}
	}
	return s.done
}

// onReset has f called (under the connection's mutex) when the stream
// is reset or its connection closes; false when it is already.
func (s *Stream) onReset(f func()) bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.rst != nil {
		return false
	}
	s.cancel = f
	return true
}

// Gone reports whether the stream was reset or its connection closed.
func (s *Stream) Gone() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.rst != nil || s.c.closed
}

// Err is why the stream ended early: ErrStreamReset or ErrConnClosed;
// nil while it is open.
func (s *Stream) Err() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.rst
}

// ExpectContinue makes the first Read send a 100 (Continue) response.
func (s *Stream) ExpectContinue() { s.continue100 = true }

// Read reads the request body: io.EOF after END_STREAM, ErrStreamReset
// or ErrConnClosed when the stream ends early. The bytes read go back to
// the client's windows in batches.
func (s *Stream) Read(p []byte) (int, error) {
	if s.endOnHeaders {
		return 0, io.EOF
	}
	if s.continue100 {
		s.continue100 = false
		var b [4]byte
		_ = s.push(appendStatus(b[:0], 100), nil, false, true, true) // a reset shows in the read
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for s.bodyR == len(s.body) {
		if s.rst != nil {
			return 0, s.rst
		}
		if s.remoteClosed {
			return 0, io.EOF
		}
		if c.closed {
			return 0, ErrConnClosed
		}
		if !s.readDeadline.IsZero() {
			d := time.Until(s.readDeadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.AfterFunc(d, s.cond.Broadcast)
			s.cond.Wait()
			t.Stop()
			continue
		}
		s.cond.Wait()
	}
	n := copy(p, s.body[s.bodyR:])
	s.bodyR += n
	if s.bodyR == len(s.body) {
		s.body, s.bodyR = s.body[:0], 0
	}
	s.unacked += int64(n)
	if !s.remoteClosed && s.unacked >= c.streamWin/2 {
		c.wbuf = appendWindowUpdate(c.wbuf, s.id, uint32(s.unacked)) //nolint:gosec // G115: at most the stream window
		s.recvWin += s.unacked
		s.unacked = 0
	}
	c.creditConnLocked(int64(n))
	c.wakeLocked()
	return n, nil
}

// SetReadDeadline bounds the wait of Read for body bytes: past t, Read
// fails with os.ErrDeadlineExceeded. Zero means no deadline.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.readDeadline = t
	return nil
}

// CloseBody says the handler reads no more of the body: what arrives is
// dropped and given back to the connection window.
func (s *Stream) CloseBody() {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.bodyGone = true
	if unread := len(s.body) - s.bodyR; unread > 0 && s.inMap {
		c.creditConnLocked(int64(unread))
	}
	s.body, s.bodyR = s.body[:0], 0
}

// WriteHeader starts the response head with status; AddHeader adds its
// fields. A 1xx status makes an interim response, sent at the next Flush
// or Write, after which WriteHeader starts the next.
func (s *Stream) WriteHeader(status int) {
	s.hblock = appendStatus(s.hblock[:0], status)
	s.hstate = hsBuilding
	s.interim = status < 200
}

// AddHeader adds a field to the response head; name is lowercased.
func (s *Stream) AddHeader(name, value []byte) { s.hblock = appendField(s.hblock, name, value) }

// AddHeaderString is AddHeader for strings.
func (s *Stream) AddHeaderString(name, value string) {
	s.hblock = appendField(s.hblock, name, value)
}

// AddTrailer adds a trailer field, sent by End.
func (s *Stream) AddTrailer(name, value []byte) { s.tblock = appendField(s.tblock, name, value) }

// AddTrailerString is AddTrailer for strings.
func (s *Stream) AddTrailerString(name, value string) {
	s.tblock = appendField(s.tblock, name, value)
}

// HeaderSent reports whether the final response head was sent.
func (s *Stream) HeaderSent() bool { return s.hstate == hsSent }

const maxPend = 16 << 10

// Write sends body bytes, buffering small writes until Flush or End.
func (s *Stream) Write(p []byte) (int, error) {
	if s.ended {
		return 0, ErrStreamReset
	}
	if s.hstate == hsNone {
		s.WriteHeader(200)
	}
	if len(s.pend)+len(p) <= maxPend {
		s.pend = append(s.pend, p...)
		return len(p), nil
	}
	if err := s.flushPend(false); err != nil {
		return 0, err
	}
	if len(p) <= maxPend {
		s.pend = append(s.pend, p...)
		return len(p), nil
	}
	if err := s.push(nil, p, false, false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends the head and the buffered body now.
func (s *Stream) Flush() error {
	if s.ended {
		return ErrStreamReset
	}
	return s.flushPend(true)
}

func (s *Stream) flushPend(flush bool) error {
	var hb []byte
	if s.hstate == hsBuilding {
		hb = s.hblock
	}
	err := s.push(hb, s.pend, false, flush, s.interim)
	s.pend = s.pend[:0]
	return err
}

// End ends the response: head (200 when none was written), buffered
// body, trailers.
func (s *Stream) End() error {
	if s.ended {
		return nil
	}
	if s.hstate == hsNone || s.interim {
		s.WriteHeader(200)
	}
	var hb []byte
	if s.hstate == hsBuilding {
		hb = s.hblock
	}
	s.ended = true
	err := s.push(hb, s.pend, true, true, false)
	s.pend = s.pend[:0]
	return err
}

// Reset ends the stream with RST_STREAM and code.
func (s *Stream) Reset(code http2.ErrCode) {
	s.ended = true
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.localDone = true
	if !s.inMap {
		return
	}
	c.dropLocked(s, ErrStreamReset)
	if !c.closed {
		c.wbuf = appendRSTStream(c.wbuf, s.id, code)
		c.wakeLocked()
	}
}

// finish ends what the handler left open: a stream with no response is
// reset, one with a response ended.
func (s *Stream) finish() {
	if s.ended {
		return
	}
	if s.hstate == hsNone {
		s.Reset(http2.ErrCodeInternal)
		return
	}
	_ = s.End() // a reset stream has nobody to tell
}

// push queues a header block (hb, when not nil), then data within the
// client's windows, then with end the trailers or END_STREAM; flush
// writes it out. With interim, hb is a 1xx head.
func (s *Stream) push(hb, data []byte, end, flush, interim bool) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.rst != nil || c.closed {
		s.localDone = true
		return ErrStreamReset
	}
	endData := end && len(s.tblock) == 0
	if hb != nil {
		if c.tableUpdate {
			c.tableUpdate = false
			hb = append([]byte{0x20}, hb...) // a size update to 0 opens the block
		}
		last := endData && len(data) == 0 && !interim
		c.wbuf = appendHeaderBlock(c.wbuf, s.id, hb, last, c.peerFrame)
		if interim {
			if s.interim {
				s.hstate, s.interim = hsNone, false
			}
		} else {
			s.hstate = hsSent
		}
		if last {
			return s.endLocked()
		}
	}
	for len(data) > 0 || endData && len(data) == 0 {
		if len(data) == 0 {
			c.wbuf = appendData(c.wbuf, s.id, nil, true)
			return s.endLocked()
		}
		if err := s.waitLocked(); err != nil {
			return err
		}
		n := int64(min(len(data), c.peerFrame))
		n = min(n, s.sendWin, c.sendWin)
		last := int(n) == len(data) && endData
		c.wbuf = appendData(c.wbuf, s.id, data[:n], last)
		s.sendWin -= n
		c.sendWin -= n
		data = data[n:]
		if last {
			return s.endLocked()
		}
	}
	if end {
		tb := s.tblock
		if c.tableUpdate {
			c.tableUpdate = false
			tb = append([]byte{0x20}, tb...)
		}
		c.wbuf = appendHeaderBlock(c.wbuf, s.id, tb, true, c.peerFrame)
		return s.endLocked()
	}
	if flush {
		c.wakeLocked()
	}
	return nil
}

// waitLocked waits for room in both windows and the write buffer.
func (s *Stream) waitLocked() error {
	c := s.c
	for {
		if s.rst != nil || c.closed {
			s.localDone = true
			return ErrStreamReset
		}
		if s.sendWin > 0 && c.sendWin > 0 && len(c.wbuf) < maxWriteBuffer {
			return nil
		}
		c.wakeLocked() // what is queued may be what the client waits for
		switch {
		case len(c.wbuf) >= maxWriteBuffer:
			c.drain.Wait()
		case c.sendWin <= 0:
			if !s.waiting {
				s.waiting = true
				c.waiters = append(c.waiters, s)
			}
			s.cond.Wait()
		default:
			s.cond.Wait()
		}
	}
}

// endLocked notes that the response is complete, and writes it out.
func (s *Stream) endLocked() error {
	c := s.c
	s.localDone = true
	if s.remoteClosed {
		c.completeLocked(s)
	} else if s.inMap {
		c.completed++
		c.wbuf = appendRSTStream(c.wbuf, s.id, http2.ErrCodeNo) // the rest of the body is not wanted
		c.dropLocked(s, ErrStreamReset)
		s.rst = nil
	}
	c.wakeLocked()
	return nil
}
