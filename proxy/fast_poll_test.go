package proxy

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func rawOf(t *testing.T, c net.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func watched(t *testing.T, c net.Conn) (syscall.RawConn, *waiter) {
	t.Helper()
	rc := rawOf(t, c)
	w := watch(rc)
	if w == nil {
		t.Fatal("the poller did not take the socket")
	}
	return rc, w
}

func TestPollerWakesAndTimesOut(t *testing.T) {
	client, server := tcpPair(t)
	rc, w := watched(t, server)
	defer unwatch(rc, w)

	start := time.Now()
	if w.wait(time.Now().Add(100 * time.Millisecond)) {
		t.Fatal("woken with nothing sent")
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("timed out after %v, want 100ms", d)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !w.wait(time.Now().Add(5 * time.Second)) {
		t.Fatal("not woken by the bytes sent")
	}
	// An event while nobody waits leaves one token: the next wait returns
	// at once, the one after that waits.
	if _, err := client.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event to arrive", 5*time.Second, func() bool { return len(w.ch) == 1 })
	if !w.wait(time.Now().Add(time.Second)) {
		t.Fatal("the token was lost")
	}
	if w.wait(time.Now().Add(50 * time.Millisecond)) {
		t.Error("woken twice for one event")
	}
}

// TestPollerSlotReuse: a slot taken again gets a new generation, and
// unwatching a closed socket leaves alone the new socket that got its
// descriptor number.
func TestPollerSlotReuse(t *testing.T) {
	_, server1 := tcpPair(t)
	rc1, w1 := watched(t, server1)
	unwatch(rc1, w1)
	client2, server2 := tcpPair(t)
	rc2, w2 := watched(t, server2)
	defer unwatch(rc2, w2)
	if w2.slot != w1.slot || w2.gen == w1.gen {
		t.Errorf("second registration: slot %d gen %d after slot %d gen %d, want the slot again with a new generation",
			w2.slot, w2.gen, w1.slot, w1.gen)
	}

	// Close a watched socket, let a new one take its descriptor number,
	// then unwatch the old one late: the new one must still be watched.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fdOf := func(c net.Conn) uintptr {
		t.Helper()
		var fd uintptr
		if err := rawOf(t, c).Control(func(d uintptr) { fd = d }); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	accept := func() (net.Conn, net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	_, server3 := accept()
	fd3 := fdOf(server3)
	rc3, w3 := watched(t, server3)
	server3.Close()
	// New sockets take the lowest free numbers: open them until one gets
	// the closed socket's.
	var client4, server4 net.Conn
	for range 64 {
		c, s := accept()
		if fdOf(c) == fd3 {
			client4, server4 = s, c // either end serves
			break
		}
		if fdOf(s) == fd3 {
			client4, server4 = c, s
			break
		}
	}
	if server4 == nil {
		t.Fatalf("no new socket got descriptor %d", fd3)
	}
	rc4, w4 := watched(t, server4)
	defer unwatch(rc4, w4)
	unwatch(rc3, w3)
	for _, c := range []struct {
		client net.Conn
		w      *waiter
	}{{client2, w2}, {client4, w4}} {
		c.w.clear()
		if _, err := c.client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if !c.w.wait(time.Now().Add(5 * time.Second)) {
			t.Errorf("slot %d: not woken after another socket was unwatched", c.w.slot)
		}
	}
}
