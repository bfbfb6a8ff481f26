package proxy

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/shift"
)

func TestRegionStats(t *testing.T) {
	a := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/err":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "/slow":
			time.Sleep(30 * time.Millisecond)
		}
	})
	dead := proxyService("dead", []string{"dead.example.com"}, "c")
	dead.Proxy.Retries = 0
	cfg := &config.Config{
		Regions: []config.Region{
			testRegion("a", a.URL),
			testRegion("b", upstream(t, (&named{name: "b"}).ServeHTTP).URL),
			testRegion("c", deadURL(t)),
		},
		Services: []config.Service{proxyService("api", []string{testHost}, "a", "b"), dead},
	}
	h := newHarness(t, cfg)
	send := func(host, path string, n int, want int) {
		t.Helper()
		for range n {
			if resp, body := h.get(host, path); resp.StatusCode != want {
				t.Fatalf("GET %s%s: %d %q, want %d", host, path, resp.StatusCode, body, want)
			}
		}
	}
	send(testHost, "/", 5, http.StatusOK)
	send(testHost, "/err", 3, http.StatusInternalServerError)
	send(testHost, "/slow", 2, http.StatusOK)
	send("dead.example.com", "/", 2, http.StatusBadGateway)

	check := func(service, region string, requests, errs uint64) shift.Counters {
		t.Helper()
		c := h.p.RegionStats(service, region)
		var n uint64
		for _, v := range c.Latency {
			n += v
		}
		if c.Requests != requests || c.Errors != errs || n != requests {
			t.Errorf("%s/%s: %d requests, %d errors, %d durations; want %d, %d, %d",
				service, region, c.Requests, c.Errors, n, requests, errs, requests)
		}
		return c
	}
	c := check("api", "a", 10, 3)
	var slow uint64
	for i := shift.Bucket(30 * time.Millisecond); i < shift.NBuckets; i++ {
		slow += c.Latency[i]
	}
	if slow < 2 {
		t.Errorf("%d durations of 30ms or more, want at least the 2 slow requests: %v", slow, c.Latency)
	}
	check("api", "b", 0, 0)
	check("dead", "c", 2, 2) // connect failures answered 502
	check("api", "c", 0, 0)  // not a region of api
	check("nope", "a", 0, 0)

	// A rebuilt table keeps the figures, and counting goes on.
	h.update(nil)
	check("api", "a", 10, 3)
	send(testHost, "/err", 1, http.StatusInternalServerError)
	check("api", "a", 11, 4)
}

func TestRegionStatsRecord(t *testing.T) {
	var s regionStats
	if allocs := testing.AllocsPerRun(100, func() { s.record(200, 5*time.Millisecond) }); allocs != 0 {
		t.Errorf("record allocates %v times", allocs)
	}
	s = regionStats{}
	codes := []struct {
		code int
		err  bool
	}{{200, false}, {404, false}, {499, false}, {500, true}, {502, true}, {503, true}, {504, true}}
	var want shift.Counters
	for _, c := range codes {
		s.record(c.code, time.Second)
		want.Observe(time.Second, c.err)
	}
	if got := s.read(); got != want {
		t.Errorf("read %+v, want %+v", got, want)
	}

	// Concurrent recording and reading: every copy is consistent enough
	// (never more errors than requests) and the final one is exact.
	s = regionStats{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				s.record(200+300*(i%2), time.Duration(w+1)*time.Millisecond)
			}
		})
	}
	for range 50 {
		if c := s.read(); c.Errors > c.Requests {
			t.Fatalf("read %d errors of %d requests", c.Errors, c.Requests)
		}
	}
	wg.Wait()
	if c := s.read(); c.Requests != 4000 || c.Errors != 2000 {
		t.Errorf("final read: %d requests, %d errors; want 4000, 2000", c.Requests, c.Errors)
	}
}
