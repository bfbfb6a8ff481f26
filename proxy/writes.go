package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/meridian-edge/meridian/policy"
	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h1"
)

// Single-writer routing (SPEC section 10): a request whose method is one
// of the service's writes goes to the writes primary only. It may move
// between the primary's endpoints, never to another region; when the
// primary cannot be reached the client gets 503 with Retry-After.

// writeRetryAfter is the Retry-After, in seconds, of a write refused
// because the writes primary cannot be reached: about a failover's
// promotion step, after which the new primary takes writes.
const writeRetryAfter = 5

var (
	writeRetryAfterValue = []string{strconv.Itoa(writeRetryAfter)}
	writeUnavailableMsg  = []byte("meridian: the writes primary cannot be reached; retry later\n")
)

// isWrite reports whether method is one of the service's writes.
func (s *service) isWrite(method string) bool {
	for _, m := range s.writes {
		if m == method {
			return true
		}
	}
	return false
}

// isWriteBytes is isWrite for the fast path's method bytes; it does not
// allocate.
func (s *service) isWriteBytes(method []byte) bool {
	for _, m := range s.writes {
		if string(method) == m {
			return true
		}
	}
	return false
}

// steerWrite confines the decision to the writes primary: the request is
// answered by it or refused, whatever the policy ranked first. A primary
// forced down leaves nothing to try.
func (ex *exchange) steerWrite() {
	ps := &ex.tab.pol.Services[ex.svc.idx]
	if !ps.HasWriter || ps.Writer < 0 || ps.Writer >= len(ex.tab.regions) {
		return
	}
	ex.d.Order[0], ex.d.N, ex.d.FailOpen = ps.Writer, 1, false
	ex.d.NoData = ex.tab.pol.Regions[ps.Writer].Override == policy.ForceDown
}

// writeUnavailable answers a write the primary could not take.
func writeUnavailable(w http.ResponseWriter, ex *exchange) {
	h := w.Header()
	h["Retry-After"] = writeRetryAfterValue
	if ex.ep != nil {
		h["X-Meridian-Region"] = ex.ep.region.hdr
	}
	plainError(w, http.StatusServiceUnavailable, string(writeUnavailableMsg))
}

// unavailable is writeUnavailable on the fast path: n bytes of request
// head are consumed when the answer is buffered.
func (fs *fastServer) unavailable(fc *fastpath.Conn, ex *exchange, n int, closing bool) fastpath.Action {
	ex.code = http.StatusServiceUnavailable
	if n > 0 {
		fc.In.Consume(n)
	}
	_ = fc.C.SetWriteDeadline(time.Now().Add(fs.idle)) // failing, the write fails too
	b := h1.AppendStatus(fc.Wire[:0], http.StatusServiceUnavailable)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nRetry-After: "...)
	b = strconv.AppendInt(b, writeRetryAfter, 10)
	b = append(b, "\r\n"...)
	if ex.ep != nil {
		b = append(b, "X-Meridian-Region: "...)
		b = append(b, ex.ep.region.name...)
		b = append(b, "\r\n"...)
	}
	b = h1.AppendDate(b)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(writeUnavailableMsg)), 10)
	b = append(b, "\r\n"...)
	if closing {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, writeUnavailableMsg...)
	fc.Wire = b
	if _, err := fc.BW.Write(b); err != nil || closing {
		return fastpath.DoClose
	}
	return fastpath.DoNext
}
