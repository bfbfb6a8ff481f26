package h2

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Errors streams report.
var (
	// ErrStreamReset: the client reset the stream, or it was refused.
	ErrStreamReset = errors.New("h2: stream reset")
	// ErrConnClosed: the connection closed under the stream.
	ErrConnClosed   = errors.New("h2: connection closed")
	errServerClosed = errors.New("h2: server closed")
)

const maxWindow = 1<<31 - 1

// conn is one client connection. Its reader goroutine (serve) parses
// frames and runs the stream state machine; handlers append their frames
// to wbuf under mu, and whoever finds no write in progress writes the
// whole buffer: one write carries the frames of every stream that queued
// some meanwhile.
type conn struct {
	srv   *Server
	nc    net.Conn
	info  ConnInfo
	src   prereader
	br    *bufio.Reader
	fr    *http2.Framer
	dec   *hpack.Decoder
	wg    sync.WaitGroup // running handlers
	wake  chan struct{}  // asks the writer goroutine for a flush
	quit  chan struct{}  // ends the writer goroutine
	wdone chan struct{}  // closed when it has ended
	idle  *time.Timer
	ping  *time.Timer // nil without PingAfter
	// idleSince is when the connection last had no open stream, idleAt
	// when its idle timer ends then (under mu).
	idleSince, idleAt time.Time
	// blocked is when the reader began to wait for bytes (Unix
	// nanoseconds), zero while it has some.
	blocked atomic.Int64

	// The reader's own state: the header block being decoded.
	hs        *Stream // its stream, nil when it is discarded
	hmode     uint8
	hEnd      bool // its HEADERS frame had END_STREAM
	hbytes    int
	hprio     bool // its HEADERS frame named itself as its dependency
	settings  bool // the client's first SETTINGS was read
	glitches  int
	streamWin int64
	connWin   int64

	mu          sync.Mutex
	drain       sync.Cond // signalled after each write
	wbuf        []byte
	wspare      []byte
	writing     bool
	ctrl        int // control frames queued since the last write
	closed      bool
	finishing   bool // close once the write buffer is out
	lingering   bool
	goaway      bool // sent: no stream beyond lastID is opened
	lastID      uint32
	peerGoaway  bool
	streams     map[uint32]*Stream
	maxID       uint32 // highest stream the client opened
	active      int    // streams in the map
	running     int    // handlers running
	sendWin     int64
	peerInit    int64
	peerFrame   int
	recvWin     int64 // the connection window the client has left
	recvUnacked int64 // consumed, not yet returned to the client
	waiters     []*Stream
	tableUpdate bool
	pingSent    time.Time // an unanswered PING's, zero when none
	resets      int
	completed   int
	// recent are streams closed before the client ended them: frames it
	// sent before it learnt that are dropped, not errors.
	recent  [32]uint32
	recentN int
}

// Header block modes.
const (
	hmNone     uint8 = iota
	hmRequest        // a new stream's request head
	hmTrailers       // an open stream's trailers
	hmDiscard        // decoded for the HPACK state only
)

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}
	wbufPool   = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}
)

// prereader reads pre before the connection.
type prereader struct {
	pre []byte
	c   net.Conn
}

func (p *prereader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.c.Read(b)
}

func newConn(s *Server, c net.Conn, info ConnInfo) *conn {
	cn := &conn{
		srv:       s,
		nc:        c,
		info:      info,
		wake:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		wdone:     make(chan struct{}),
		streams:   make(map[uint32]*Stream),
		sendWin:   65535,
		peerInit:  65535,
		peerFrame: 16384,
		recvWin:   int64(s.ConnWindow),
		streamWin: int64(s.StreamWindow),
		connWin:   int64(s.ConnWindow),
	}
	if cn.info.Remote == nil {
		cn.info.Remote = c.RemoteAddr()
	}
	cn.drain.L = &cn.mu
	cn.src = prereader{pre: info.Preread, c: c}
	cn.info.Preread = nil
	cn.br = readerPool.Get().(*bufio.Reader)
	cn.br.Reset(&cn.src)
	cn.fr = http2.NewFramer(io.Discard, cn.br)
	cn.fr.SetReuseFrames()
	cn.fr.SetMaxReadFrameSize(16384)
	cn.dec = hpack.NewDecoder(4096, cn.emit)
	cn.dec.SetMaxStringLength(int(s.MaxHeaderListSize))
	cn.wbuf = (*wbufPool.Get().(*[]byte))[:0]
	cn.wspare = (*wbufPool.Get().(*[]byte))[:0]
	return cn
}

func (c *conn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(ErrConnClosed)
	for c.writing {
		c.drain.Wait() // a Shutdown or Close caller's write fails soon
	}
	readerPool.Put(c.br)
	c.br = nil
	for _, b := range [][]byte{c.wbuf, c.wspare} {
		if cap(b) <= 512<<10 {
			b = b[:0]
			wbufPool.Put(&b)
		}
	}
	c.wbuf, c.wspare = nil, nil
}

// serve runs the reader until the connection ends.
func (c *conn) serve() {
	go c.writeLoop()
	defer func() {
		close(c.quit)
		<-c.wdone
	}()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.PrefaceTimeout)) // failing, the read fails too
	var pre [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil || string(pre[:]) != http2.ClientPreface {
		c.closeNow(ErrConnClosed)
		return
	}
	s := c.srv
	c.mu.Lock()
	c.wbuf = appendSettings(c.wbuf,
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: s.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: s.StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: s.MaxHeaderListSize},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
	)
	if s.ConnWindow > 65535 {
		c.wbuf = appendWindowUpdate(c.wbuf, 0, s.ConnWindow-65535)
	}
	d := c.idleTimeout()
	c.idleSince = time.Now()
	c.idleAt = c.idleSince.Add(d)
	c.idle = time.AfterFunc(d, c.onIdle)
	if s.PingAfter > 0 {
		c.ping = time.AfterFunc(s.PingAfter, c.onPing)
	}
	c.mu.Unlock()
	c.kick()

	var err error
	for {
		if c.br.Buffered() == 0 {
			c.kick()
			if c.ping != nil {
				c.blocked.Store(time.Now().UnixNano())
			}
		}
		fh, rerr := c.fr.ReadFrameHeader()
		if c.ping != nil {
			c.blocked.Store(0)
		}
		var f http2.Frame
		if rerr == nil {
			f, rerr = c.fr.ReadFrameForHeader(fh)
		}
		err = rerr
		if err == nil {
			err = c.handle(f)
		}
		if err == nil {
			continue
		}
		// A stream error ends the stream, but for one found in parsing
		// a header block, whose fields the HPACK state never saw.
		var se http2.StreamError
		parsedBlock := rerr != nil && (fh.Type == http2.FrameHeaders || fh.Type == http2.FrameContinuation)
		if errors.As(err, &se) && se.StreamID != 0 && !parsedBlock {
			c.streamError(se.StreamID, se.Code)
			continue
		}
		break
	}
	code, isProto := connCode(err)
	if isProto {
		c.fail(code)
	} else {
		c.closeNow(ErrConnClosed)
	}
	c.wg.Wait()
	c.idle.Stop()
	if c.ping != nil {
		c.ping.Stop()
	}
}

// connCode is the GOAWAY code for a reader error, and whether there is
// one to send: not for I/O errors.
func connCode(err error) (http2.ErrCode, bool) {
	var ce http2.ConnectionError
	var se http2.StreamError
	switch {
	case errors.As(err, &ce):
		return http2.ErrCode(ce), true
	case errors.As(err, &se):
		return se.Code, true // a stream error the connection cannot survive
	case errors.Is(err, http2.ErrFrameTooLarge):
		return http2.ErrCodeFrameSize, true
	}
	return 0, false
}

// writeLoop flushes what the reader queues.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	for {
		select {
		case <-c.wake:
			// Handlers about to end their responses run first, and
			// their frames go out in the same write.
			runtime.Gosched()
			c.mu.Lock()
			c.flushLocked()
			c.mu.Unlock()
		case <-c.quit:
			return
		}
	}
}

// kick has the writer goroutine flush the buffer unless a write is on.
func (c *conn) kick() {
	c.mu.Lock()
	idle := !c.writing && (len(c.wbuf) > 0 || c.finishing && !c.lingering)
	c.mu.Unlock()
	if idle {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// wakeLocked has the writer goroutine write what is queued, unless a
// write is under way (it takes what is queued when it is done). Handlers
// do not write themselves: responses that complete while the writer is
// busy or waking go out in one write.
func (c *conn) wakeLocked() {
	if !c.writing && (len(c.wbuf) > 0 || c.finishing && !c.lingering) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// flushLocked writes the buffer, and what is queued while it writes,
// unless another goroutine is writing already (it takes what is queued).
// It releases mu while it writes.
func (c *conn) flushLocked() {
	if c.writing {
		return
	}
	c.writing = true
	for len(c.wbuf) > 0 && !c.closed {
		buf := c.wbuf
		c.wbuf, c.ctrl = c.wspare[:0], 0
		c.mu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.WriteTimeout)) // failing, the write fails
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		c.wspare = buf[:0]
		c.drain.Broadcast()
		if err != nil {
			c.closeLocked(ErrConnClosed)
		}
	}
	c.writing = false
	c.drain.Broadcast()
	if c.finishing && !c.lingering && !c.closed {
		c.lingering = true
		c.linger()
	}
}

// linger half-closes the connection once the last frames are out, and
// lets the reader read on for a while: a close with unread bytes would
// reset the connection and could lose what was written last.
func (c *conn) linger() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite() // a failure shows as a read error
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
}

// queueCtrl queues a control frame's bytes; false when too many are
// queued and the connection was closed.
func (c *conn) queueCtrlLocked() bool {
	c.ctrl++
	if c.ctrl > maxQueuedControl {
		c.closeLocked(ErrConnClosed)
		return false
	}
	return true
}

// closeNow closes the connection at once.
func (c *conn) closeNow(err error) {
	c.mu.Lock()
	c.closeLocked(err)
	c.mu.Unlock()
}

func (c *conn) closeLocked(err error) {
	if c.closed {
		return
	}
	c.closed = true
	_ = c.nc.Close() // the reader and any writer see their calls fail
	for _, s := range c.streams {
		c.dropLocked(s, err)
	}
	c.drain.Broadcast()
}

// fail sends GOAWAY with code and closes the connection once it is out.
func (c *conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	if !c.closed {
		c.wbuf = appendGoAway(c.wbuf, c.maxID, code)
		c.goaway, c.lastID, c.finishing = true, c.maxID, true
		for _, s := range c.streams {
			c.dropLocked(s, ErrConnClosed)
		}
		c.flushLocked()
	}
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		c.drainReads()
	}
	c.closeNow(ErrConnClosed)
	c.srv.Log.Debug("http2 connection error", "peer", c.info.Remote, "code", code)
}

// drainReads reads and discards what the client sends until it closes or
// the linger deadline passes.
func (c *conn) drainReads() {
	_, _ = io.CopyN(io.Discard, c.br, 1<<20) // ends with the deadline
}

// shutdown starts a graceful close: GOAWAY with the last stream opened;
// those streams complete, then the connection closes.
func (c *conn) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goAwayLocked(http2.ErrCodeNo)
}

func (c *conn) goAwayLocked(code http2.ErrCode) {
	if c.closed {
		return
	}
	if !c.goaway {
		c.goaway, c.lastID = true, c.maxID
		c.wbuf = appendGoAway(c.wbuf, c.lastID, code)
	}
	c.maybeFinishLocked()
	c.flushLocked()
}

// maybeFinishLocked closes a connection that is going away once its last
// stream is done.
func (c *conn) maybeFinishLocked() {
	if (c.goaway || c.peerGoaway) && c.active == 0 && !c.finishing {
		c.finishing = true
	}
}

// idleTimeout is the idle timeout of a connection going idle now.
func (c *conn) idleTimeout() time.Duration {
	if f := c.srv.IdleNow; f != nil {
		return min(f(), c.srv.IdleTimeout)
	}
	return c.srv.IdleTimeout
}

// shortenIdle moves the idle timer of a connection with no open stream to
// d after it went idle, when that is sooner.
func (c *conn) shortenIdle(now time.Time, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active != 0 || c.idle == nil || c.closed {
		return
	}
	if at := c.idleSince.Add(d); at.Before(c.idleAt) {
		c.idleAt = at
		c.idle.Reset(max(at.Sub(now), 0))
	}
}

// onIdle closes the connection when it has had no stream for the idle
// timeout.
func (c *conn) onIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active == 0 && !c.closed {
		c.goAwayLocked(http2.ErrCodeNo)
	}
}

// onPing sends a PING when the reader has waited PingAfter with streams
// open, and closes the connection when one goes unanswered PingTimeout.
func (c *conn) onPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	s, now := c.srv, time.Now()
	next := s.PingAfter
	switch {
	case !c.pingSent.IsZero():
		waited := now.Sub(c.pingSent)
		if waited >= s.PingTimeout {
			c.srv.Log.Debug("http2 client did not answer a ping", "peer", c.info.Remote)
			c.closeLocked(ErrConnClosed)
			return
		}
		next = s.PingTimeout - waited
	case c.active > 0:
		if b := c.blocked.Load(); b != 0 {
			if waited := now.Sub(time.Unix(0, b)); waited >= s.PingAfter {
				c.pingSent = now
				c.wbuf = appendPing(c.wbuf)
				c.wakeLocked()
				next = s.PingTimeout
			} else {
				next = s.PingAfter - waited
			}
		}
	}
	c.ping.Reset(next)
}

// streamError resets stream id with code.
func (c *conn) streamError(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[id]; s != nil {
		c.dropLocked(s, ErrStreamReset)
	}
	if c.queueCtrlLocked() {
		c.wbuf = appendRSTStream(c.wbuf, id, code)
	}
}

// dropLocked removes s from the open streams and cancels its handler;
// the body it did not read goes back to the connection window.
func (c *conn) dropLocked(s *Stream, err error) {
	if s.rst == nil {
		s.rst = err
		if s.done != nil {
			close(s.done)
		}
		if s.cancel != nil {
			s.cancel()
			s.cancel = nil
		}
	}
	if s.inMap {
		s.inMap = false
		delete(c.streams, s.id)
		if !s.remoteClosed {
			c.recent[c.recentN%len(c.recent)] = s.id
			c.recentN++
		}
		c.active--
		if c.active == 0 && c.idle != nil && !c.closed {
			d := c.idleTimeout()
			c.idleSince = time.Now()
			c.idleAt = c.idleSince.Add(d)
			c.idle.Reset(d)
		}
		if unread := len(s.body) - s.bodyR; unread > 0 {
			c.creditConnLocked(int64(unread))
		}
		s.body, s.bodyR = s.body[:0], 0
		c.maybeFinishLocked()
	}
	s.cond.Broadcast()
}

// recentlyClosed reports whether id was closed before the client ended it.
func (c *conn) recentlyClosedLocked(id uint32) bool {
	for _, r := range c.recent {
		if r == id {
			return true
		}
	}
	return false
}

// creditConnLocked returns n consumed bytes to the connection window,
// in batches of half of it.
func (c *conn) creditConnLocked(n int64) {
	c.recvUnacked += n
	if c.recvUnacked >= c.connWin/2 && !c.closed {
		c.wbuf = appendWindowUpdate(c.wbuf, 0, uint32(c.recvUnacked)) //nolint:gosec // G115: at most the connection window
		c.recvWin += c.recvUnacked
		c.recvUnacked = 0
	}
}

// openLocked registers a new stream.
func (c *conn) openLocked(s *Stream) {
	c.streams[s.id] = s
	s.inMap = true
	c.active++
	if c.active == 1 && c.idle != nil {
		c.idle.Stop()
	}
	c.running++
	c.wg.Add(1)
}
