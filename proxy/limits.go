package proxy

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound the client connections of every listener Serve runs, the
// fast path's and those it hands to net/http alike.
type Limits struct {
	// Max is the number of client connections held at once; one more is
	// closed as soon as it is accepted. 0: no limit.
	Max int
	// MaxPerSource bounds the connections of one client address (of one
	// /64 for IPv6, which a single client can fill); 0: no limit.
	MaxPerSource int
	// IdleTimeout closes keep-alive connections that carry no request (it
	// is the IdleTimeout of the servers built by Server); 0: IdleTimeout.
	IdleTimeout time.Duration
	// BusyIdleTimeout replaces IdleTimeout for the fast path's
	// connections (HTTP/1.1, and HTTP/2 ones with no open stream) while
	// more than BusyAt (a fraction) of Max are open, also for those
	// already waiting. 0: no change under load.
	BusyIdleTimeout time.Duration
	BusyAt          float64
}

// busyHysteresis is how far below the busy mark the count must fall before
// the idle timeout is long again, so that a count hovering at the mark does
// not flip it at every connection.
const busyHysteresis = 0.9

// Reasons a connection is refused, as the rejected counter's reason label
// names them.
const (
	rejectMax       = "max"
	rejectPerSource = "max_per_source"
)

// connLimiter counts the client connections of a Proxy's listeners. It is
// touched once when a connection is accepted and once when it closes,
// never per request.
type connLimiter struct {
	lim      Limits
	busyMark int64 // open connections from which the node is busy; 0: never
	idleMark int64 // and below which it is not any more

	open   atomic.Int64
	busy   atomic.Bool
	onBusy func() // runs (in its own goroutine) when the node turns busy

	mu       sync.Mutex
	bySource map[netip.Addr]int32

	gauge    prometheus.Gauge
	rejected *prometheus.CounterVec
	byReason [2]prometheus.Counter // max, max_per_source
}

func newConnLimiter(lim Limits, reg prometheus.Registerer, log *slog.Logger) *connLimiter {
	l := &connLimiter{lim: lim, bySource: make(map[netip.Addr]int32)}
	if lim.Max > 0 && lim.BusyIdleTimeout > 0 && lim.BusyAt > 0 {
		l.busyMark = max(int64(lim.BusyAt*float64(lim.Max)), 1)
		l.idleMark = int64(busyHysteresis * float64(l.busyMark))
	}
	l.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meridian_proxy_connections",
		Help: "Client connections open on the http and https listeners.",
	})
	l.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_proxy_connections_rejected_total",
		Help: "Client connections closed as soon as accepted because a limit was reached, by reason (max, max_per_source).",
	}, []string{"reason"})
	if reg != nil {
		l.gauge = register(reg, l.gauge, log)
		l.rejected = register(reg, l.rejected, log)
	}
	l.byReason[0] = l.rejected.WithLabelValues(rejectMax)
	l.byReason[1] = l.rejected.WithLabelValues(rejectPerSource)
	return l
}

// sourceKey is the address a per-source limit counts: the IPv4 address,
// or the /64 of an IPv6 one; invalid when addr is not an IP address.
func sourceKey(addr net.Addr) netip.Addr {
	var a netip.Addr
	switch t := addr.(type) {
	case *net.TCPAddr:
		a, _ = netip.AddrFromSlice(t.IP)
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// acquire counts a new connection from src; it returns false, having
// counted the refusal, when a limit is reached.
func (l *connLimiter) acquire(src netip.Addr) bool {
	n := l.open.Add(1)
	if l.lim.Max > 0 && n > int64(l.lim.Max) {
		l.open.Add(-1)
		l.byReason[0].Inc()
		return false
	}
	if l.lim.MaxPerSource > 0 && src.IsValid() {
		l.mu.Lock()
		k := l.bySource[src]
		if int(k) >= l.lim.MaxPerSource {
			l.mu.Unlock()
			l.open.Add(-1)
			l.byReason[1].Inc()
			return false
		}
		l.bySource[src] = k + 1
		l.mu.Unlock()
	}
	l.gauge.Inc()
	if l.busyMark > 0 && n >= l.busyMark && l.busy.CompareAndSwap(false, true) && l.onBusy != nil {
		go l.onBusy()
	}
	return true
}

// release uncounts a connection from src that acquire took.
func (l *connLimiter) release(src netip.Addr) {
	n := l.open.Add(-1)
	if l.lim.MaxPerSource > 0 && src.IsValid() {
		l.mu.Lock()
		if k := l.bySource[src]; k <= 1 {
			delete(l.bySource, src)
		} else {
			l.bySource[src] = k - 1
		}
		l.mu.Unlock()
	}
	l.gauge.Dec()
	if l.busyMark > 0 && n < l.idleMark {
		l.busy.Store(false)
	}
}

// connSlot is one accepted connection's place in the counts; release
// gives it back once, whoever closes the connection.
type connSlot struct {
	l    *connLimiter
	src  netip.Addr
	done atomic.Bool
}

// Release gives the slot back (fastpath.Slot).
func (s *connSlot) Release() { s.release() }

func (s *connSlot) release() {
	if s != nil && s.done.CompareAndSwap(false, true) {
		s.l.release(s.src)
	}
}
