package proxy

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// AccessLog writes one JSON line per proxied request, on both the fast
// path and the net/http path:
//
//	{"time":"2026-01-02T15:04:05.123456Z","service":"web","region":"eu-west",
//	 "endpoint":"10.0.0.7:8080","status":200,"duration_seconds":0.0015,
//	 "attempts":2,"retries":1,"fail_open":false,"client":"81.2.69.142"}
//
// region and endpoint are those of the last attempt ("" when no region
// could serve); status 499 means the client went away before an answer.
// A request only appends its line to a buffer in memory; a goroutine of
// the AccessLog writes the buffer out every FlushInterval or once it
// holds flushSize bytes, so a slow disk never holds a request. When more
// than maxBuffered bytes wait, further lines are dropped and counted.
type AccessLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	cur     []byte // lines waiting to be written
	out     io.Writer
	closed  bool
	dropped atomic.Uint64

	// wmu serialises writes to out (the flusher, Reopen, Close).
	wmu      sync.Mutex
	spare    []byte
	reported uint64 // drops already logged

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// FlushInterval is the longest a line waits in memory.
const FlushInterval = 200 * time.Millisecond

const (
	flushSize   = 64 << 10
	maxBuffered = 8 << 20
)

// NewAccessLog starts an access log writing to out. Close stops it; a
// Closer out is closed then. log (nil: slog.Default()) receives write
// errors and drop counts.
func NewAccessLog(out io.Writer, log *slog.Logger) *AccessLog {
	if log == nil {
		log = slog.Default()
	}
	a := &AccessLog{
		log:  log.With("component", "proxy"),
		out:  out,
		cur:  make([]byte, 0, flushSize),
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go a.run()
	return a
}

// Dropped is the number of lines dropped because too many waited.
func (a *AccessLog) Dropped() uint64 { return a.dropped.Load() }

// Reopen writes out what waits, closes the current output (when it is an
// io.Closer) and continues on out: log rotation.
func (a *AccessLog) Reopen(out io.Writer) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.flushLocked()
	old := a.out
	a.mu.Lock()
	a.out = out
	a.mu.Unlock()
	closeOut(old, a.log)
}

// Close writes out every line logged so far, stops the flusher and closes
// the output. Lines logged afterwards are dropped.
func (a *AccessLog) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.flushLocked()
	closeOut(a.out, a.log)
}

func closeOut(w io.Writer, log *slog.Logger) {
	if c, ok := w.(io.Closer); ok {
		if err := c.Close(); err != nil {
			log.Warn("closing access log", "err", err)
		}
	}
}

func (a *AccessLog) run() {
	defer close(a.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		case <-a.kick:
		}
		a.wmu.Lock()
		a.flushLocked()
		a.wmu.Unlock()
	}
}

// flushLocked swaps the buffers and writes the waiting lines out, outside
// the lock requests take. a.wmu is held.
func (a *AccessLog) flushLocked() {
	a.mu.Lock()
	a.cur, a.spare = a.spare[:0], a.cur
	out := a.out
	a.mu.Unlock()
	if len(a.spare) == 0 {
		return
	}
	if _, err := out.Write(a.spare); err != nil {
		a.log.Warn("writing access log", "err", err, "bytes", len(a.spare))
	}
	if cap(a.spare) > 4*flushSize {
		a.spare = make([]byte, 0, flushSize) // give back a burst's memory
	}
	if n := a.dropped.Load(); n > a.reported {
		a.log.Warn("access log lines dropped: output too slow", "lines", n-a.reported)
		a.reported = n
	}
}

// record appends the line of a finished exchange. It allocates nothing
// once the buffer has grown to its working size.
func (a *AccessLog) record(ex *exchange, end time.Time, elapsed time.Duration) {
	a.mu.Lock()
	if a.closed || len(a.cur) > maxBuffered {
		a.mu.Unlock()
		a.dropped.Add(1)
		return
	}
	b := a.cur
	b = append(b, `{"time":"`...)
	b = end.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","service":`...)
	b = appendJSONString(b, ex.svc.name)
	region, endpoint := "", ""
	if ex.ep != nil {
		region, endpoint = ex.ep.region.name, ex.ep.url.Host
	}
	b = append(b, `,"region":`...)
	b = appendJSONString(b, region)
	b = append(b, `,"endpoint":`...)
	b = appendJSONString(b, endpoint)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ex.code), 10)
	b = append(b, `,"duration_seconds":`...)
	b = strconv.AppendFloat(b, elapsed.Seconds(), 'f', -1, 64)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(ex.attempts), 10)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(ex.retries), 10)
	b = append(b, `,"fail_open":`...)
	b = strconv.AppendBool(b, ex.d.FailOpen)
	b = append(b, `,"client":"`...)
	if ex.client.IsValid() {
		b = ex.client.AppendTo(b)
	}
	b = append(b, "\"}\n"...)
	a.cur = b
	full := len(b) >= flushSize
	a.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
