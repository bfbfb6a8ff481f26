package shift

import (
	"math"
	"time"
)

// Latency histogram layout. Bucket 0 holds durations up to MinBound; buckets
// 1..NBuckets-2 are log-spaced, each upper bound growing by the same factor
// (60000^(1/62) ≈ 1.194, so a bucket is about 19% wide) up to MaxBound;
// the last bucket holds everything slower than MaxBound.
const (
	NBuckets = 64
	MinBound = time.Millisecond
	MaxBound = 60 * time.Second
)

// bounds[i] is the inclusive upper bound of bucket i, for i < NBuckets-1.
var bounds = func() [NBuckets - 1]time.Duration {
	var b [NBuckets - 1]time.Duration
	last := len(b) - 1
	ratio := float64(MaxBound) / float64(MinBound)
	for i := range b {
		b[i] = time.Duration(math.Round(float64(MinBound) * math.Pow(ratio, float64(i)/float64(last))))
	}
	b[0], b[last] = MinBound, MaxBound
	return b
}()

// UpperBound returns the inclusive upper bound of bucket i, and false for
// the last bucket, which has none.
func UpperBound(i int) (time.Duration, bool) {
	if i < 0 || i >= len(bounds) {
		return 0, false
	}
	return bounds[i], true
}

// lowerBound is the exclusive lower bound of bucket i (0 for bucket 0).
func lowerBound(i int) time.Duration {
	if i == 0 {
		return 0
	}
	return bounds[i-1]
}

// Bucket returns the bucket that holds d: the first whose upper bound is at
// least d. It does not allocate.
func Bucket(d time.Duration) int {
	lo, hi := 0, len(bounds) // answer in [lo, hi]; hi = overflow bucket
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if d <= bounds[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Counters are cumulative figures of one service in one region since the
// process started: requests answered, those that count as errors, and
// their durations by bucket. The proxy keeps them; a guard subtracts two
// readings to get a Window.
type Counters struct {
	Requests uint64
	Errors   uint64
	Latency  [NBuckets]uint64
}

// Observe counts one request that took d. It is for building Counters by
// hand (tests, tools); the proxy keeps atomic counters of its own.
func (c *Counters) Observe(d time.Duration, isError bool) {
	c.Requests++
	if isError {
		c.Errors++
	}
	c.Latency[Bucket(d)]++
}

// Add adds o to c: the figures of several regions together.
func (c *Counters) Add(o Counters) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	for i := range c.Latency {
		c.Latency[i] += o.Latency[i]
	}
}

// Sub returns the window from the earlier reading a to c. Counters only
// rise; if c is below a in any figure (the counters were recreated, as when
// a region left the service and came back), the window is c itself, from
// zero.
func (c Counters) Sub(a Counters) Window {
	w := Window(c)
	if c.Requests < a.Requests || c.Errors < a.Errors {
		return w
	}
	for i := range c.Latency {
		if c.Latency[i] < a.Latency[i] {
			return Window(c)
		}
		w.Latency[i] = c.Latency[i] - a.Latency[i]
	}
	w.Requests = c.Requests - a.Requests
	w.Errors = c.Errors - a.Errors
	return w
}

// Window is what happened between two readings of Counters.
type Window Counters

// ErrorRatio is Errors/Requests, 0 for an empty window and at most 1.
func (w Window) ErrorRatio() float64 {
	if w.Requests == 0 {
		return 0
	}
	return min(float64(w.Errors)/float64(w.Requests), 1)
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) of the window's request
// durations, 0 for an empty window. With n the number of durations in the
// histogram, it finds the first bucket whose cumulative count reaches the
// rank q·n, and interpolates linearly between the bucket's lower and upper
// bound by where the rank falls within the bucket's count (as Prometheus'
// histogram_quantile does):
//
//	lower + (upper − lower) × (q·n − below) / count
//
// so the estimate lies in the same bucket as the true quantile and is off
// by at most one bucket's width (about 19% of the value above 1ms). A rank
// that falls in the last bucket answers MaxBound: the quantile is at least
// that.
func (w Window) Quantile(q float64) time.Duration {
	var n uint64
	for _, c := range w.Latency {
		n += c
	}
	if n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(n)
	var below uint64
	for i, c := range w.Latency {
		if c == 0 || float64(below+c) < rank {
			below += c
			continue
		}
		if i == len(bounds) {
			return MaxBound
		}
		lo, hi := lowerBound(i), bounds[i]
		frac := (rank - float64(below)) / float64(c)
		return lo + time.Duration(math.Round(float64(hi-lo)*frac))
	}
	return MaxBound // unreachable: the last non-empty bucket reaches rank n
}
