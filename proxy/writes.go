package proxy

import (
	"net/http"
	"strconv"

	"github.com/meridian-edge/meridian/policy"
	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
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
	region := ""
	if ex.ep != nil {
		region = ex.ep.region.name
	}
	if err := fc.WriteRetryAfter(http.StatusServiceUnavailable, writeUnavailableMsg, writeRetryAfter, region, closing); err != nil || closing {
		return fastpath.DoClose
	}
	return fastpath.DoNext
}
