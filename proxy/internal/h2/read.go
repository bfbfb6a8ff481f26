package h2

import (
	"bytes"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// handle runs the state machine for one frame from the client. It
// returns a StreamError for the streams to reset, a ConnectionError for
// the connection to close with GOAWAY.
func (c *conn) handle(f http2.Frame) error {
	if !c.settings {
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			return http2.ConnectionError(http2.ErrCodeProtocol) // the preface ends with SETTINGS
		}
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.HeadersFrame:
		return c.onHeaders(f)
	case *http2.ContinuationFrame:
		if len(f.HeaderBlockFragment()) == 0 && !f.HeadersEnded() {
			if err := c.glitch(); err != nil {
				return err
			}
		}
		return c.feed(f.HeaderBlockFragment(), f.HeadersEnded())
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if f.IsAck() {
			c.mu.Lock()
			if f.Data == pingData {
				c.pingSent = time.Time{}
			}
			c.mu.Unlock()
			return nil
		}
		c.mu.Lock()
		if c.queueCtrlLocked() {
			c.wbuf = appendPingAck(c.wbuf, f.Data)
		}
		c.mu.Unlock()
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.peerGoaway = true
		c.maybeFinishLocked()
		c.mu.Unlock()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol) // clients do not push
	}
	return nil // unknown frame types are ignored
}

// glitch counts a frame that does nothing; too many close the connection.
func (c *conn) glitch() error {
	c.glitches++
	if c.glitches > maxGlitches {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if !c.settings {
		c.settings = true
		_ = c.nc.SetReadDeadline(timeZero) // the idle timer takes over
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerInit
			c.peerInit = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.cond.Broadcast()
			}
		case http2.SettingMaxFrameSize:
			c.peerFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			c.tableUpdate = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.queueCtrlLocked() {
		c.wbuf = appendSettingsAck(c.wbuf)
	}
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWin += inc
		if c.sendWin > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, s := range c.waiters {
			s.waiting = false
			s.cond.Broadcast()
		}
		clear(c.waiters)
		c.waiters = c.waiters[:0]
		return nil
	}
	if f.StreamID > c.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return nil // closed: frames in flight are fine
	}
	s.sendWin += inc
	if s.sendWin > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	s.cond.Broadcast()
	return nil
}

func (c *conn) onReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID > c.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return nil
	}
	s.remoteClosed = true // the client closed it: later frames on it are errors
	c.dropLocked(s, ErrStreamReset)
	return c.countResetLocked()
}

// countResetLocked counts a stream reset by the client or refused; past
// the budget, when they outnumber the streams that completed, the
// connection is an attack (rapid reset, CVE-2023-44487).
func (c *conn) countResetLocked() error {
	c.resets++
	if c.resets > c.srv.ResetBudget && c.resets > c.completed {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

func (c *conn) onData(f *http2.DataFrame) error {
	id, n := f.StreamID, int64(f.Length)
	if id > c.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
	}
	data := f.Data()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.recvWin {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWin -= n
	s := c.streams[id]
	if s == nil || s.remoteClosed {
		c.creditConnLocked(n)
		if s == nil && c.recentlyClosedLocked(id) {
			return nil // sent before the client saw our end of it
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > s.recvWin {
		c.creditConnLocked(n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	s.recvWin -= n
	if pad := n - int64(len(data)); pad > 0 {
		c.creditConnLocked(pad)
		s.unacked += pad
	}
	s.nread += int64(len(data))
	if s.clen >= 0 && (s.nread > s.clen || f.StreamEnded() && s.nread != s.clen) {
		c.creditConnLocked(int64(len(data)))
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if len(data) == 0 && !f.StreamEnded() {
		if err := c.glitch(); err != nil {
			return err
		}
	}
	if s.bodyGone {
		c.creditConnLocked(int64(len(data)))
	} else {
		s.body = append(s.body, data...)
	}
	if f.StreamEnded() {
		c.remoteEndLocked(s)
	}
	s.cond.Broadcast()
	return nil
}

// remoteEndLocked notes END_STREAM from the client.
func (c *conn) remoteEndLocked(s *Stream) {
	s.remoteClosed = true
	if s.localDone {
		c.completeLocked(s)
	}
}

// completeLocked closes a stream both sides ended.
func (c *conn) completeLocked(s *Stream) {
	if s.inMap {
		c.completed++
		c.dropLocked(s, ErrStreamReset) // no handler waits on it any more
		s.rst = nil
	}
}

func (c *conn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol) // clients open odd streams
	}
	c.hs, c.hEnd, c.hbytes = nil, f.StreamEnded(), 0
	c.hprio = f.HasPriority() && f.Priority.StreamDep == id
	c.mu.Lock()
	s := c.streams[id]
	recent := s == nil && id <= c.maxID && c.recentlyClosedLocked(id)
	c.mu.Unlock()
	switch {
	case recent:
		c.hmode = hmDiscard // trailers sent before the client saw our end
	case s != nil:
		if s.remoteClosed {
			return http2.ConnectionError(http2.ErrCodeStreamClosed)
		}
		c.hmode, c.hs = hmTrailers, s
		s.traw, s.tfields, s.hsize, s.bad = s.traw[:0], s.tfields[:0], 0, false
	case id <= c.maxID:
		return http2.ConnectionError(http2.ErrCodeStreamClosed) // a closed stream
	default:
		c.maxID = id
		c.mu.Lock()
		away := c.goaway
		c.mu.Unlock()
		if away {
			c.hmode = hmDiscard
		} else {
			c.hmode, c.hs = hmRequest, newStream(c, id)
		}
	}
	c.dec.SetEmitEnabled(c.hmode != hmDiscard)
	return c.feed(f.HeaderBlockFragment(), f.HeadersEnded())
}

// feed decodes a fragment of the header block.
func (c *conn) feed(frag []byte, end bool) error {
	c.hbytes += len(frag) + frameHeaderLen
	if c.hbytes > 2*int(c.srv.MaxHeaderListSize)+64<<10 {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm) // a CONTINUATION flood
	}
	if _, err := c.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return nil
	}
	if err := c.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	s, mode := c.hs, c.hmode
	c.hs, c.hmode = nil, hmNone
	switch mode {
	case hmRequest:
		return c.openStream(s)
	case hmTrailers:
		if c.hprio || s.bad || s.tooLarge || !c.hEnd {
			return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !s.inMap {
			return nil // reset meanwhile
		}
		if s.clen >= 0 && s.nread != s.clen {
			return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol}
		}
		s.hasTrailers = true
		c.remoteEndLocked(s)
		s.cond.Broadcast()
	}
	return nil
}

// openStream starts the handler of a new stream, or refuses it.
func (c *conn) openStream(s *Stream) error {
	id := s.id
	s.endOnHeaders = c.hEnd
	s.remoteClosed = c.hEnd
	switch {
	case s.tooLarge:
		c.answer(s, 431)
		return nil
	case c.hprio || s.bad || !s.validRequest():
		putStream(s)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	case s.clen >= 0 && c.hEnd && s.clen != 0:
		putStream(s)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		putStream(s)
		return ErrConnClosed
	}
	if c.active >= int(c.srv.MaxConcurrentStreams) || c.running >= 2*int(c.srv.MaxConcurrentStreams) {
		err := c.countResetLocked()
		c.mu.Unlock()
		putStream(s)
		if err != nil {
			return err
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	s.sendWin = c.peerInit
	s.recvWin = c.streamWin
	c.openLocked(s)
	c.mu.Unlock()
	c.srv.dispatch(s)
	return nil
}

// answer ends a stream the handler does not see with a bare status.
func (c *conn) answer(s *Stream, code int) {
	var b [8]byte
	block := appendStatus(b[:0], code)
	c.mu.Lock()
	if c.tableUpdate {
		c.tableUpdate = false
		block = append([]byte{0x20}, block...)
	}
	c.wbuf = appendHeaderBlock(c.wbuf, s.id, block, true, c.peerFrame)
	if !s.remoteClosed {
		c.wbuf = appendRSTStream(c.wbuf, s.id, http2.ErrCodeNo)
	}
	c.mu.Unlock()
	putStream(s)
}

// run is a stream's handler goroutine.
func (c *conn) run(s *Stream) {
	defer func() {
		if v := recover(); v != nil {
			c.srv.Log.Error("panic serving an http2 stream", "panic", v)
			s.Reset(http2.ErrCodeInternal)
		}
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
		c.wg.Done()
		putStream(s)
	}()
	c.srv.Handler(s)
	s.finish()
}

// emit takes a decoded header field.
func (c *conn) emit(hf hpack.HeaderField) {
	s := c.hs
	if s == nil {
		return
	}
	s.hsize += len(hf.Name) + len(hf.Value) + 32
	if s.hsize > int(c.srv.MaxHeaderListSize) {
		s.tooLarge = true
	}
	if s.tooLarge || s.bad {
		return
	}
	if c.hmode == hmTrailers {
		if !validField(hf.Name, hf.Value) || hf.Name[0] == ':' {
			s.bad = true
			return
		}
		s.traw, s.tfields = addField(s.traw, s.tfields, hf.Name, hf.Value)
		return
	}
	s.addRequestField(hf.Name, hf.Value)
}

// addRequestField checks and stores one field of a request head.
func (s *Stream) addRequestField(name, value string) {
	if name != "" && name[0] == ':' {
		if s.regular {
			s.bad = true // pseudo-header fields come first
			return
		}
		var p *span
		switch name {
		case ":method":
			p = &s.method
		case ":scheme":
			p = &s.scheme
		case ":authority":
			p = &s.authority
		case ":path":
			p = &s.path
		default:
			s.bad = true
			return
		}
		if p.set || !httpguts.ValidHeaderFieldValue(value) {
			s.bad = true
			return
		}
		//nolint:gosec // G115: the header list is bounded far below 2^31
		*p = span{set: true, vs: int32(len(s.raw)), ve: int32(len(s.raw) + len(value))}
		s.raw = append(s.raw, value...)
		return
	}
	s.regular = true
	if !validField(name, value) {
		s.bad = true
		return
	}
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		s.bad = true
		return
	case "te":
		if value != "trailers" {
			s.bad = true
			return
		}
	case "content-length":
		n, err := strconv.ParseUint(value, 10, 63)
		if err != nil || value[0] == '+' || s.clen >= 0 && s.clen != int64(n) {
			s.bad = true
			return
		}
		s.clen = int64(n)
	}
	s.raw, s.fields = addField(s.raw, s.fields, name, value)
}

//
//nolint:gosec // G115: the header list is bounded far below 2^31
func addField(raw []byte, fields []span, name, value string) ([]byte, []span) {
	sp := span{set: true, ns: int32(len(raw))}
	raw = append(raw, name...)
	sp.vs = int32(len(raw))
	raw = append(raw, value...)
	sp.ve = int32(len(raw))
	return raw, append(fields, sp)
}

// validField applies RFC 9113 section 8.2.1: lowercase token names, and
// values without NUL, CR, LF or white space at either end.
func validField(name, value string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' || !httpguts.IsTokenRune(rune(c)) {
			if i == 0 && c == ':' {
				continue
			}
			return false
		}
	}
	if value != "" && (isSpace(value[0]) || isSpace(value[len(value)-1])) {
		return false
	}
	return httpguts.ValidHeaderFieldValue(value)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// validRequest checks the pseudo-header fields of a complete head.
func (s *Stream) validRequest() bool {
	if !s.method.set || s.method.vs == s.method.ve {
		return false
	}
	if bytes.Equal(s.Method(), []byte("CONNECT")) {
		return !s.scheme.set && !s.path.set && s.authority.set && s.authority.vs != s.authority.ve
	}
	if !s.scheme.set || !s.path.set || s.path.vs == s.path.ve {
		return false
	}
	p := s.Path()
	return p[0] == '/' || len(p) == 1 && p[0] == '*' && bytes.Equal(s.Method(), []byte("OPTIONS"))
}
