package fastpath

import (
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// What the fast path does with heads that are not in its plain form
// (h1.ParseResponse and h1.ScreenRequest hold the rules): response heads
// net/http reads although they bend RFC 9112 are parsed from a plain copy,
// and request heads whose framing is ambiguous are refused before
// anything, the fast path or net/http, acts on them.

// discardOutput drops what is buffered for the client.
func (fc *Conn) discardOutput() {
	if fc.sw.active() {
		fc.BW.Reset(&fc.sw)
	} else {
		fc.BW.Reset(fc.C)
	}
}

// screen screens the request head at the start of the buffer before the
// connection is handed to net/http.
func (fc *Conn) screen() h1.Framing {
	b := fc.In.Buffered()
	n := h1.HeadEnd(b, 0)
	if n < 0 {
		return h1.FramingOK // a head too large for the buffer: net/http answers 431
	}
	return h1.ScreenRequest(b[:n])
}

// refuse answers a request whose framing is refused with 400 and closes:
// the bytes after its head cannot be told apart from a next request.
func (fc *Conn) refuse(why h1.Framing) Action {
	fc.srv.log.Debug("request refused", "peer", fc.PeerIP, "reason", why.String())
	msg := "meridian: " + why.String() + "\n"
	if fc.WritePlain(400, []byte(msg), "", true) == nil && fc.BW.Flush() == nil {
		lingerClose(fc.C)
	}
	return DoClose
}
