package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/meridian-edge/meridian/policy"
)

// exchange is the state of one proxied request, from routing to the last
// byte. It is pooled; only the request's own goroutine touches it (the
// ReverseProxy hooks and the retrying RoundTripper run synchronously
// inside ServeHTTP).
type exchange struct {
	p       *Proxy
	tab     *table
	svc     *service
	w       http.ResponseWriter
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	start   time.Time
	client  netip.Addr
	trusted bool // the TCP peer is a trusted proxy
	idem    bool // the request may be repeated once it reached an upstream
	// write: the request's method is one of the service's writes, which
	// go to the writes primary only.
	write bool
	// lastFail is how the last failed attempt failed.
	lastFail failure

	d   policy.Decision
	pos int // position in d.Order of the region being tried
	// tried marks the endpoints of the current region already attempted.
	tried uint64
	// all: no region of the decision has a usable endpoint, so every
	// endpoint is tried (failing open, like the decision).
	all      bool
	picked   bool // the first endpoint has been chosen
	ep       *endpoint
	attempts int
	retries  int // retries made
	// budgeted is set while the request holds a slot of the retry budget
	// (taken by its first retry after a response or a timeout).
	budgeted bool

	// stickyEP is the endpoint the sticky cookie named, if usable.
	stickyEP *endpoint

	// Request body: replay holds a fully buffered body that may be sent
	// again; stream a body sent once.
	hasBody bool
	replay  []byte
	stream  *streamBody

	// The client's path, kept to re-target retries.
	path, rawPath, query string

	code int // status sent to the client (or counted)
}

type exchangeKey struct{}

// exchangeOf returns the exchange a proxied request belongs to, or nil.
func exchangeOf(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (ex *exchange) reset() { *ex = exchange{} }

// decide asks the policy for the region order, then applies the sticky
// cookie and works out whether any region has a usable endpoint.
func (ex *exchange) decide(r *http.Request) {
	svc := ex.svc
	c := policy.Client{Addr: ex.client}
	if svc.needGeo && ex.tab.geo != nil {
		loc := ex.tab.geo.Lookup(ex.client)
		c.Country, c.Continent, c.Subdivision = loc.Country, loc.Continent, loc.Subdivision
		c.Location = policy.Point{Lat: loc.Lat, Lon: loc.Lon, Valid: loc.HasCoords}
	}
	policy.Decide(ex.tab.pol, svc.idx, &c, &ex.d)
	if ex.write {
		ex.steerWrite()
	}
	if ex.d.NoData {
		return
	}
	if svc.sticky == stickyCookie {
		ex.applyCookie(r)
	}
	ex.all = true
	for _, ri := range ex.d.Order[:ex.d.N] {
		if len(ex.tab.regions[ri].usable) > 0 {
			ex.all = false
			break
		}
	}
}

// next chooses the next endpoint to try and counts it in flight: an
// untried endpoint of the current region, else of the regions after it in
// decision order; nil when none is left.
func (ex *exchange) next() *endpoint {
	for ex.pos < ex.d.N {
		rg := ex.tab.regions[ex.d.Order[ex.pos]]
		cands := rg.usable
		if ex.all {
			cands = rg.eps
		}
		var ep *endpoint
		if !ex.picked {
			ep = ex.stickyPick(cands)
		}
		if ep == nil {
			ep = leastLoaded(cands, ex.tried)
		}
		if ep != nil {
			ex.picked = true
			ex.tried |= ep.bit
			ep.st.inflight.Add(1)
			return ep
		}
		ex.pos++
		ex.tried = 0
	}
	return nil
}

// stickyPick returns the endpoint a sticky service keeps the client on,
// when it is among cands; nil otherwise.
func (ex *exchange) stickyPick(cands []*endpoint) *endpoint {
	switch ex.svc.sticky {
	case stickyClientIP:
		return rendezvous(cands, clientHash(ex.client))
	case stickyCookie:
		for _, e := range cands {
			if e == ex.stickyEP {
				return e
			}
		}
	}
	return nil
}

// prepareBody buffers a request body of at most max_retry_body bytes so
// that it can be replayed; a larger one is streamed once. It returns a
// status and message when the body cannot be read from the client.
func (ex *exchange) prepareBody(r *http.Request) (int, string) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return 0, ""
	}
	ex.hasBody = true
	// A client may not dribble its body for longer than the request
	// may take; the server resets the deadline for the next request.
	_ = http.NewResponseController(ex.w).SetReadDeadline(time.Now().Add(ex.svc.timeout)) // unsupported writers just go without
	limit := ex.svc.maxBody
	switch {
	case r.ContentLength > 0 && r.ContentLength <= limit:
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return bodyError(err)
		}
		ex.setReplay(r, buf)
	case r.ContentLength < 0 && limit > 0:
		buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			return bodyError(err)
		}
		if int64(len(buf)) <= limit {
			ex.setReplay(r, buf)
			r.ContentLength = int64(len(buf))
			r.TransferEncoding = nil
			break
		}
		ex.stream = &streamBody{r: io.MultiReader(bytes.NewReader(buf), r.Body)}
		r.Body = ex.stream
	default:
		ex.stream = &streamBody{r: r.Body}
		r.Body = ex.stream
	}
	return 0, ""
}

func bodyError(err error) (int, string) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return http.StatusRequestTimeout, "meridian: request body too slow\n"
	}
	return http.StatusBadRequest, "meridian: reading request body failed\n"
}

func (ex *exchange) setReplay(r *http.Request, buf []byte) {
	ex.replay = buf
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
}

// replayable reports whether the request could be sent again in full.
func (ex *exchange) replayable() bool { return !ex.hasBody || ex.replay != nil }

// untouched reports whether no byte of the body has been sent upstream.
func (ex *exchange) untouched() bool {
	return !ex.hasBody || ex.replay != nil || ex.stream.read.Load() == 0
}

// streamBody is a request body sent at most once. Close does nothing: the
// server closes the client's body, and a transport that failed to connect
// must not end it for the next attempt. Once the handler is done, reads
// fail: a transport goroutine must not read the client's body after that.
type streamBody struct {
	r      io.Reader
	read   atomic.Int64
	eof    atomic.Bool // the client's body was read to its end
	broken atomic.Bool // reading the client's body failed
	slow   atomic.Bool // … because it did not arrive in time
	done   atomic.Bool
}

var errBodyDone = errors.New("proxy: request body read after the exchange ended")

func (b *streamBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		return 0, errBodyDone
	}
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	switch {
	case err == io.EOF:
		b.eof.Store(true)
	case err != nil:
		b.slow.Store(errors.Is(err, os.ErrDeadlineExceeded))
		b.broken.Store(true)
	}
	return n, err
}

// clientAtFault reports whether a failed attempt is down to the client's
// streamed body: it broke off, or was still arriving when the request
// timed out. Such failures are not the endpoint's.
func (ex *exchange) clientAtFault(ctx context.Context) bool {
	b := ex.stream
	return b != nil && (b.broken.Load() || context.Cause(ctx) == errTimeout && !b.eof.Load())
}

func (b *streamBody) Close() error { return nil }
