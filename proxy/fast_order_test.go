package proxy

import (
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// socketPairs returns n connected loopback TCP pairs: the accepted ends,
// then the dialled ones.
func socketPairs(t *testing.T, n int) (srv, cli []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		srv, cli = append(srv, s), append(cli, c)
	}
	return srv, cli
}

func rawConn(t *testing.T, c net.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestOrderCollectsInEventOrder: the set reports its sockets in the order
// they became readable, whatever the order they were registered in.
func TestOrderCollectsInEventOrder(t *testing.T) {
	p, err := newOrderPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.f.Close() })
	srv, cli := socketPairs(t, 6)
	index := map[*waiter]int{}
	for _, i := range []int{3, 0, 5, 1, 4, 2} {
		var w *waiter
		if err := rawConn(t, srv[i]).Control(func(fd uintptr) { w = p.register(int(fd)) }); err != nil || w == nil {
			t.Fatalf("register %d: %v", i, err)
		}
		index[w] = i
	}
	got := func() []int {
		p.collect()
		var order []int
		for _, w := range p.batch {
			order = append(order, index[w])
		}
		return order
	}
	send := func(order ...int) {
		for _, i := range order {
			if _, err := cli[i].Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(want ...int) {
		t.Helper()
		// Loopback delivers within the write, but allow for a slow host.
		var order []int
		for deadline := time.Now().Add(2 * time.Second); len(order) < len(want) && time.Now().Before(deadline); {
			order = append(order, got()...)
			if len(order) < len(want) {
				time.Sleep(time.Millisecond)
			}
		}
		if !slices.Equal(order, want) {
			t.Fatalf("events in order %v, want %v", order, want)
		}
	}
	send(4, 1, 5, 0, 2, 3)
	check(4, 1, 5, 0, 2, 3)
	// Edge-triggered: bytes left unread raise no event until more come.
	send(2, 4)
	check(2, 4)
	if order := got(); len(order) != 0 {
		t.Fatalf("events with nothing new: %v", order)
	}
	// A slot given back and reused: the old socket's events are not the
	// new owner's.
	var old *waiter
	for w, i := range index {
		if i == 5 {
			old = w
		}
	}
	p.release(old)
	send(5)
	check()
}

// live is how many sockets are in the set.
func (p *orderPoller) live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters) - len(p.free)
}

// TestOrderWakesInOrder: goroutines woken for one batch run in the
// batch's order on one P, though the runtime runs the last one made ready
// first. A timer that fires as the batch is woken (a sweep's, say) can put
// its goroutine ahead and push the first of the batch back, so one of a
// few tries must come out exactly in order; waking in the plain order
// never does.
func TestOrderWakesInOrder(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector shuffles the run queue")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	want := []int{0, 1, 2, 3, 4, 5, 6, 7}
	var got []int
	for range 3 {
		if got = wakeBatch(len(want)); slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("ran in order %v, want %v", got, want)
}

// wakeBatch parks n goroutines, wakes them with wakeInOrder and returns
// the order they ran in.
func wakeBatch(n int) []int {
	batch := make([]*waiter, n)
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range batch {
		batch[i] = &waiter{ch: make(chan struct{}, 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-batch[i].ch
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
	}
	// With one P, the goroutines run up to their wait while this one
	// sleeps.
	time.Sleep(20 * time.Millisecond)
	wakeInOrder(batch)
	wg.Wait()
	return order
}

// TestOrderedWaitsLetGo: client and upstream sockets leave the set when
// they close, and a client connection handed to net/http leaves it while
// it stays open.
func TestOrderedWaitsLetGo(t *testing.T) {
	p := theOrderPoller()
	if p == nil {
		t.Skip("no epoll set here")
	}
	base := p.live()
	up := newCannedUpstream(t, always(okResponse))
	h := newHarness(t, cannedConfig(up.URL), fastPath)
	var clients []*rawClient
	for i := range 4 {
		c := dialRaw(t, h.addr)
		for j := range 3 {
			if resp, _ := c.get(testHost, "/"+strconv.Itoa(i)+"/"+strconv.Itoa(j)); resp.StatusCode != 200 {
				t.Fatalf("client %d request %d: %d", i, j, resp.StatusCode)
			}
		}
		clients = append(clients, c)
	}
	fastUp := int(up.conns.Load()) // the fast path's, all idle in its pool
	waitFor(t, "the clients and upstream connections in the set", 2*time.Second, func() bool {
		return p.live() == base+len(clients)+fastUp
	})

	// An upgrade goes to net/http after a fast request (and upstream over
	// net/http's own connection): the client's connection leaves the set
	// and still answers.
	handed := clients[0]
	resp, _ := handed.do(http.MethodGet, "GET /ws HTTP/1.1\r\nHost: "+testHost+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("upgrade request: %d", resp.StatusCode)
	}
	waitFor(t, "the handed connection out of the set", 2*time.Second, func() bool {
		return p.live() == base+len(clients)-1+fastUp
	})

	for _, c := range clients {
		c.conn.Close()
	}
	h.p.Close() // closes the idle upstream connections
	waitFor(t, "every socket out of the set", 2*time.Second, func() bool { return p.live() == base })
}

// TestRuntimePollerWaits: with ordered waits off, the fast path waits in
// the runtime's poller, and keep-alive, pipelining and the idle timeout
// work the same.
func TestRuntimePollerWaits(t *testing.T) {
	orderedWaits.Store(false)
	defer orderedWaits.Store(true)
	up := newCannedUpstream(t, always(okResponse))
	h := newHarness(t, cannedConfig(up.URL), fastPath, func(s *http.Server) { s.IdleTimeout = 200 * time.Millisecond })
	c := dialRaw(t, h.addr)
	for i := range 20 {
		if resp, _ := c.get(testHost, "/"+strconv.Itoa(i)); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	c.send("GET /a HTTP/1.1\r\nHost: " + testHost + "\r\n\r\nGET /b HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n")
	for i := range 2 {
		if resp, _ := c.read(http.MethodGet); resp.StatusCode != 200 {
			t.Fatalf("pipelined %d: %d", i, resp.StatusCode)
		}
	}
	if n := h.slowConns.Load(); n != 0 {
		t.Errorf("net/http served %d connections, want 0", n)
	}
	start := time.Now()
	if !c.closed(5 * time.Second) {
		t.Fatal("idle connection not closed")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v, want about 200ms", d)
	}
}
