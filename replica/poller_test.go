package replica

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/meridian-edge/meridian/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPollerLag polls a lag endpoint whose answer the test sets: a lag
// read is known and exported, an unreadable one is unknown (never 0) and
// not exported.
func TestPollerLag(t *testing.T) {
	var body atomic.Value
	body.Store(`{"lag_seconds": 1.5}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b := body.Load().(string)
		if b == "" {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(b))
	}))
	defer srv.Close()
	regions := []config.Region{
		{Name: "a", Replication: &config.Replication{LagURL: srv.URL, Interval: config.Duration(20 * time.Millisecond)}},
		{Name: "b"},
	}
	reg := prometheus.NewRegistry()
	p := New(regions, Options{Registerer: reg})
	p.Start(context.Background())
	defer p.Stop()
	wait := func(what string, cond func(Lag) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond(p.Lag("a")) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, p.Lag("a"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("lag 1.5", func(l Lag) bool { return l.Known && l.Seconds == 1.5 })
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meridian_region_replica_lag_seconds Replica lag of a region's data as its replication.lag_url reports it; absent while unknown.
# TYPE meridian_region_replica_lag_seconds gauge
meridian_region_replica_lag_seconds{region="a"} 1.5
`), "meridian_region_replica_lag_seconds"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	body.Store("")
	wait("unknown", func(l Lag) bool { return !l.Known && strings.Contains(l.Error, "status 502") })
	if n, err := testutil.GatherAndCount(reg, "meridian_region_replica_lag_seconds"); err != nil || n != 0 {
		t.Fatalf("an unknown lag is exported: %d series, %v", n, err)
	}
	body.Store("0.25")
	wait("lag 0.25", func(l Lag) bool { return l.Known && l.Seconds == 0.25 })

	if l := p.Lag("b"); l.Known || p.Has("b") {
		t.Fatalf("region without replication: %+v", l)
	}
	// A reload keeps the last lag of an unchanged region.
	p.Update(regions)
	if l := p.Lag("a"); !l.Known {
		t.Fatalf("after an update the lag was forgotten: %+v", l)
	}
}

func TestPromote(t *testing.T) {
	var calls atomic.Int32
	status := atomic.Int32{}
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("promote with %s", r.Method)
		}
		calls.Add(1)
		if s := status.Load(); s == 0 {
			time.Sleep(300 * time.Millisecond)
		} else {
			w.WriteHeader(int(s))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := Promote(ctx, nil, srv.URL, time.Second, "{}"); err != nil {
		t.Fatal(err)
	}
	status.Store(http.StatusConflict)
	if err := Promote(ctx, nil, srv.URL, time.Second, "{}"); err == nil || !strings.Contains(err.Error(), "status 409") {
		t.Fatalf("got %v, want status 409", err)
	}
	status.Store(0)
	if err := Promote(ctx, nil, srv.URL, 50*time.Millisecond, "{}"); err == nil {
		t.Fatal("a hook slower than its timeout succeeded")
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3 (never retried)", n)
	}
}
