package shift

import (
	"math"
	"testing"
	"time"
)

func TestBounds(t *testing.T) {
	if b, ok := UpperBound(0); !ok || b != MinBound {
		t.Errorf("bucket 0 bound = %v %v, want %v", b, ok, MinBound)
	}
	if b, ok := UpperBound(NBuckets - 2); !ok || b != MaxBound {
		t.Errorf("bucket %d bound = %v %v, want %v", NBuckets-2, b, ok, MaxBound)
	}
	if _, ok := UpperBound(NBuckets - 1); ok {
		t.Error("the overflow bucket has an upper bound")
	}
	for i := 1; i < NBuckets-1; i++ {
		lo, _ := UpperBound(i - 1)
		hi, _ := UpperBound(i)
		if r := float64(hi) / float64(lo); math.Abs(r-1.194) > 0.002 {
			t.Errorf("bucket %d: bound ratio %.4f, want ≈1.194", i, r)
		}
	}
}

func TestBucket(t *testing.T) {
	b1, _ := UpperBound(1)
	b30, _ := UpperBound(30)
	cases := []struct {
		name string
		d    time.Duration
		want int
	}{
		{"zero", 0, 0},
		{"negative", -time.Second, 0},
		{"min bound", MinBound, 0},
		{"just above min", MinBound + 1, 1},
		{"bound 1", b1, 1},
		{"bound 30", b30, 30},
		{"above bound 30", b30 + 1, 31},
		{"max bound", MaxBound, NBuckets - 2},
		{"above max", MaxBound + 1, NBuckets - 1},
		{"an hour", time.Hour, NBuckets - 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Bucket(tc.d); got != tc.want {
				t.Errorf("Bucket(%v) = %d, want %d", tc.d, got, tc.want)
			}
		})
	}
	if a := testing.AllocsPerRun(100, func() { _ = Bucket(123 * time.Millisecond) }); a != 0 {
		t.Errorf("Bucket allocates %v times", a)
	}
}

func counters(n int, d time.Duration, errs int) Counters {
	var c Counters
	for i := range n {
		c.Observe(d, i < errs)
	}
	return c
}

func TestSub(t *testing.T) {
	a := counters(10, 5*time.Millisecond, 1)
	b := a
	b.Add(counters(30, 200*time.Millisecond, 3))
	w := b.Sub(a)
	if w.Requests != 30 || w.Errors != 3 || w.Latency[Bucket(200*time.Millisecond)] != 30 || w.Latency[Bucket(5*time.Millisecond)] != 0 {
		t.Errorf("window = %d requests, %d errors, buckets %v; want 30, 3, 30 requests at 200ms only", w.Requests, w.Errors, w.Latency)
	}
	// Counters recreated since the baseline: the window starts at zero.
	fresh := counters(4, 5*time.Millisecond, 0)
	if w := fresh.Sub(b); w.Requests != 4 || w.Errors != 0 {
		t.Errorf("after a reset: window = %d requests, %d errors, want 4, 0", w.Requests, w.Errors)
	}
}

func TestErrorRatio(t *testing.T) {
	cases := []struct {
		name           string
		requests, errs uint64
		want           float64
	}{
		{"empty", 0, 0, 0},
		{"none", 200, 0, 0},
		{"some", 200, 3, 0.015},
		{"all", 7, 7, 1},
		{"torn read", 5, 6, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Window{Requests: tc.requests, Errors: tc.errs}).ErrorRatio(); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// interp is the documented interpolation in bucket i.
func interp(i int, frac float64) time.Duration {
	hi, _ := UpperBound(i)
	var lo time.Duration
	if i > 0 {
		lo, _ = UpperBound(i - 1)
	}
	return lo + time.Duration(math.Round(float64(hi-lo)*frac))
}

func TestQuantile(t *testing.T) {
	mixed := counters(90, 10*time.Millisecond, 0)
	mixed.Add(counters(10, 2*time.Second, 0))
	cases := []struct {
		name string
		c    Counters
		q    float64
		want time.Duration
	}{
		{"empty", Counters{}, 0.95, 0},
		{"one bucket p95", counters(100, 10*time.Millisecond, 0), 0.95, interp(Bucket(10*time.Millisecond), 0.95)},
		{"one bucket p50", counters(100, 10*time.Millisecond, 0), 0.5, interp(Bucket(10*time.Millisecond), 0.5)},
		{"slow tail p95", mixed, 0.95, interp(Bucket(2*time.Second), 0.5)},
		{"slow tail p90", mixed, 0.90, interp(Bucket(10*time.Millisecond), 1)},
		{"q 0", mixed, 0, interp(Bucket(10*time.Millisecond), 0)},
		{"q 1", mixed, 1, interp(Bucket(2*time.Second), 1)},
		{"sub-millisecond", counters(20, 100*time.Microsecond, 0), 0.95, 950 * time.Microsecond},
		{"overflow", counters(20, 2*time.Minute, 0), 0.95, MaxBound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Window(tc.c).Quantile(tc.q); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// A spread of durations: the estimate stays within one bucket's width of
// the true quantile.
func TestQuantileAccuracy(t *testing.T) {
	var c Counters
	for ms := 1; ms <= 1000; ms++ {
		c.Observe(time.Duration(ms)*time.Millisecond, false)
	}
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
		truth := time.Duration(q*1000) * time.Millisecond
		got := Window(c).Quantile(q)
		if r := float64(got) / float64(truth); r < 1/1.2 || r > 1.2 {
			t.Errorf("q%.2f: got %v, true %v (ratio %.3f, want within 20%%)", q, got, truth, r)
		}
	}
}
