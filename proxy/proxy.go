package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-edge/meridian/health"
)

// Options configure a Proxy.
type Options struct {
	// Logger receives state changes; nothing per request above debug.
	// nil means slog.Default().
	Logger *slog.Logger
	// Registerer takes the proxy's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// FailOpen counts decisions that failed open, by service; owned by the
	// node, may be nil.
	FailOpen *prometheus.CounterVec
	// Reporter receives the outcome of every upstream attempt (passive
	// health); may be nil.
	Reporter health.Reporter
	// Now reads the clock for request durations; nil means time.Now.
	Now func() time.Time
	// UpstreamTLS is the base TLS client configuration for https endpoints
	// (roots, client certificates); nil uses the system roots.
	UpstreamTLS *tls.Config
	// Limits bound the client connections of the listeners Serve runs
	// (limits.go); the zero value sets none.
	Limits Limits
}

// Proxy is the steering reverse proxy. It is an http.Handler; Update gives
// it its routing table and may be called at any time.
type Proxy struct {
	log         *slog.Logger
	now         func() time.Time
	reporter    health.Reporter
	failOpen    *prometheus.CounterVec
	upstreamTLS *tls.Config
	met         *metrics
	rp          httputil.ReverseProxy

	tab    atomic.Pointer[table]
	pool   sync.Pool // *exchange
	access atomic.Pointer[AccessLog]

	mu        sync.Mutex // serialises Update and Close
	services  map[string]*serviceState
	endpoints map[endpointKey]*endpointState
	pairs     map[pairKey]*regionMetrics

	conns   *connLimiter // client connections of the listeners Serve runs
	serving servers      // the listeners Serve runs, for Shutdown (shutdown.go)
}

// errTimeout is the cause with which a request's context is cancelled when
// proxy.timeout runs out.
var errTimeout = errors.New("proxy timeout")

// New returns a Proxy that answers 503 until the first Update.
func New(opts Options) *Proxy {
	p := &Proxy{
		log:         opts.Logger,
		now:         opts.Now,
		reporter:    opts.Reporter,
		failOpen:    opts.FailOpen,
		upstreamTLS: opts.UpstreamTLS,
		services:    make(map[string]*serviceState),
		endpoints:   make(map[endpointKey]*endpointState),
		pairs:       make(map[pairKey]*regionMetrics),
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("component", "proxy")
	if p.now == nil {
		p.now = time.Now
	}
	p.met = newMetrics(opts.Registerer, p.log)
	p.conns = newConnLimiter(opts.Limits, opts.Registerer, p.log)
	p.conns.onBusy = p.serving.shortenIdle
	p.pool.New = func() any { return new(exchange) }
	p.rp = httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      retrier{},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return p
}

// Close closes the idle upstream connections of every service. In-flight
// requests finish; the Proxy keeps working (new connections are dialled).
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.services {
		s.transport.CloseIdleConnections()
	}
	for _, st := range p.endpoints {
		st.fast.CloseIdle()
	}
}

// SetAccessLog makes every request finished from now on write its line to
// a; nil turns the access log off. The caller closes the AccessLog it
// replaces.
func (p *Proxy) SetAccessLog(a *AccessLog) { p.access.Store(a) }

// ServeHTTP steers one request: route by Host, decide the regions, forward
// with retries and failover.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && p.servePlainHTTP(w, r) {
		return // plain services' HTTP/2 requests go upstream as the fast path's do
	}
	tab := p.tab.Load()
	if tab == nil {
		plainError(w, http.StatusServiceUnavailable, "meridian: proxy not configured\n")
		return
	}
	svc := tab.route(r)
	if svc == nil {
		plainError(w, http.StatusMisdirectedRequest, fmt.Sprintf("meridian: no service for host %q\n", r.Host))
		return
	}

	ex := p.pool.Get().(*exchange)
	ex.p, ex.tab, ex.svc, ex.w = p, tab, svc, w
	ex.start = p.now()
	svc.st.load.active.Add(1)
	defer p.finish(ex)

	peer := peerAddr(r.RemoteAddr)
	ex.trusted = svc.trusts(peer)
	ex.idem = isIdempotent(r)
	ex.write = svc.isWrite(r.Method)
	ex.client = peer
	if ex.trusted {
		ex.client = svc.clientFromXFF(peer, r.Header["X-Forwarded-For"])
	}
	ex.decide(r)
	if ex.write && (ex.d.NoData || ex.all) {
		ex.code = http.StatusServiceUnavailable
		writeUnavailable(w, ex)
		return
	}
	if ex.d.NoData {
		ex.code = http.StatusServiceUnavailable
		plainError(w, ex.code, "meridian: no region may serve this request\n")
		return
	}
	if ex.d.FailOpen && svc.failOpen != nil {
		svc.failOpen.Inc()
	}
	if ex.ep = ex.next(); ex.ep == nil {
		ex.code = http.StatusServiceUnavailable
		plainError(w, ex.code, "meridian: no endpoint may serve this request\n")
		return
	}
	if code, msg := ex.prepareBody(r); code != 0 {
		ex.code = code
		plainError(w, code, msg)
		return
	}

	ctx, cancel := context.WithCancelCause(r.Context())
	ex.cancel = cancel
	ex.timer = time.AfterFunc(svc.timeout, func() { cancel(errTimeout) })
	ex.ctx = context.WithValue(ctx, exchangeKey{}, ex)
	p.rp.ServeHTTP(w, r.WithContext(ex.ctx))
}

// finish accounts for a request once its handler is done (also when it
// panics to abort the response) and returns its exchange to the pool.
func (p *Proxy) finish(ex *exchange) {
	if ex.timer != nil {
		ex.timer.Stop()
	}
	if ex.cancel != nil {
		ex.cancel(context.Canceled)
	}
	if ex.stream != nil {
		ex.stream.done.Store(true)
	}
	ld := ex.svc.st.load
	ld.active.Add(-1)
	if ex.budgeted {
		ld.retrying.Add(-1)
	}
	if ex.code == 0 {
		// The handler never got to a status: the client went away.
		ex.code = statusClientClosed
	}
	end := p.now()
	elapsed := end.Sub(ex.start)
	if al := p.access.Load(); al != nil {
		al.record(ex, end, elapsed)
	}
	if ex.ep != nil {
		ex.ep.st.inflight.Add(-1)
		rm := ex.svc.rm[ex.ep.region.idx]
		rm.count(ex.code)
		rm.duration.Observe(elapsed.Seconds())
		rm.stats.record(ex.code, elapsed)
	} else {
		p.met.countNoRegion(ex.svc.name, ex.code)
	}
	ex.reset()
	p.pool.Put(ex)
}

// statusClientClosed is the code counted for requests whose client went
// away before an answer (nginx's 499); it is never sent.
const statusClientClosed = 499

// plainError writes a short plain-text error.
func plainError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg)) //nolint:gosec // G705: text/plain with nosniff; a write error means the client left
}

// bufferPool lends ReverseProxy its 32 KiB copy buffers.
type bufferPool struct{}

const copyBufferSize = 32 << 10

var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[copyBufferSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) == copyBufferSize {
		copyBuffers.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
	}
}
