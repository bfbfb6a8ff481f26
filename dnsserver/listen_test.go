package dnsserver

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestWildcardAnswersFromQueriedAddress binds wildcard addresses and asks
// through addresses other than the first loopback one: the answer must
// leave from the address the query went to, or the client's connected
// socket never sees it.
func TestWildcardAnswersFromQueriedAddress(t *testing.T) {
	cases := []struct {
		listen string
		via    []string
	}{
		{"0.0.0.0:0", []string{"127.0.0.1", "127.0.0.2"}},
		{"[::]:0", []string{"::1", "127.0.0.3"}},
	}
	for _, tc := range cases {
		t.Run(tc.listen, func(t *testing.T) {
			f := newFixture(t, setup{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := f.s.ListenAndServe(ctx, []string{tc.listen}); err != nil {
				if strings.Contains(tc.listen, "::") {
					t.Skipf("no IPv6: %v", err)
				}
				t.Fatal(err)
			}
			defer func() {
				if err := f.s.Shutdown(context.Background()); err != nil {
					t.Error(err)
				}
			}()
			port := f.s.Addrs()[0].(*net.UDPAddr).Port
			for _, host := range tc.via {
				for _, network := range []string{"udp", "tcp"} {
					c := &dns.Client{Net: network, Timeout: 2 * time.Second}
					r, _, err := c.Exchange(question{name: "www.example.test.", qtype: dns.TypeA}.msg(), net.JoinHostPort(host, strconv.Itoa(port)))
					if err != nil {
						t.Errorf("via %s over %s: %v", host, network, err)
						continue
					}
					if len(r.Answer) != 1 {
						t.Errorf("via %s over %s: %v", host, network, r)
					}
				}
			}
		})
	}
}

func TestListenLifecycle(t *testing.T) {
	t.Run("shutdown before listening", func(t *testing.T) {
		s := New(Options{})
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("listen twice", func(t *testing.T) {
		f := newFixture(t, setup{})
		f.listen(t)
		err := f.s.ListenAndServe(context.Background(), []string{"127.0.0.1:0"})
		if err == nil || err.Error() != "listening: server already started or shut down" {
			t.Errorf("second ListenAndServe: %v", err)
		}
	})
	t.Run("address in use", func(t *testing.T) {
		busy, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		s := New(Options{})
		err = s.ListenAndServe(context.Background(), []string{"127.0.0.1:0", busy.LocalAddr().String()})
		if err == nil || !strings.Contains(err.Error(), "listening on "+busy.LocalAddr().String()) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("ListenAndServe on a busy port: %v", err)
		}
		if len(s.Addrs()) != 0 {
			t.Errorf("addresses %v left bound after a failed start", s.Addrs())
		}
	})
	t.Run("bad address", func(t *testing.T) {
		s := New(Options{})
		err := s.ListenAndServe(context.Background(), []string{"127.0.0.1"})
		if err == nil || err.Error() != "listening on 127.0.0.1: address 127.0.0.1: missing port in address" {
			t.Errorf("ListenAndServe: %v", err)
		}
	})
	t.Run("context ends serving", func(t *testing.T) {
		f := newFixture(t, setup{})
		ctx, cancel := context.WithCancel(context.Background())
		if err := f.s.ListenAndServe(ctx, []string{"127.0.0.1:0"}); err != nil {
			t.Fatal(err)
		}
		addr := f.s.Addrs()[0].String()
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := f.s.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("TCP still accepting after the context ended")
		}
	})
	t.Run("shutdown finishes pipelined queries", func(t *testing.T) {
		f := newFixture(t, setup{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := f.s.ListenAndServe(ctx, []string{"127.0.0.1:0"}); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", f.s.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		m := question{name: "www.example.test.", qtype: dns.TypeA}.msg()
		writeTCP(t, c, m)
		readTCP(t, c) // the connection is being served
		if err := f.s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection still open after shutdown")
		}
	})
}

func TestPlainUDP(t *testing.T) {
	f := newFixture(t, setup{})
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := plainUDP{pc}
	done := make(chan struct{})
	go func() {
		u.serve(f.s)
		close(done)
	}()
	f.addr = pc.LocalAddr().String()
	r := f.exchange(t, question{name: "api.example.test.", qtype: dns.TypeA, ecs: "81.2.69.0/24"}.msg(), "udp")
	if len(r.Answer) != 1 || ecsOf(r) == nil || ecsOf(r).SourceScope != 16 {
		t.Errorf("answer: %v", r)
	}
	u.Close()
	<-done
}

// TestReusePortSockets serves one address from several sockets; queries
// from many source ports spread over them and all get answers.
func TestReusePortSockets(t *testing.T) {
	f := newFixture(t, setup{})
	f.s.opts.UDPSockets = 3
	f.listen(t)
	for i := range 20 {
		r := f.exchange(t, question{name: "www.example.test.", qtype: dns.TypeA}.msg(), "udp")
		if len(r.Answer) != 1 {
			t.Fatalf("query %d: %v", i, r)
		}
	}
	if n := len(f.s.lis.udp); reusePortSupported && n != 3 {
		t.Errorf("%d UDP sockets, want 3", n)
	}
}
