package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemoRuns runs `meridian demo` as a process on free ports and does
// what its instructions say: a steered DNS answer, a proxied request, and
// a failover of the proxy with no failed request. SIGTERM ends it.
func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	var (
		dnsAddr, httpAddr, adminAddr string
		regionPort                   int
		demo                         *child
	)
	for attempt := 1; ; attempt++ {
		dnsAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		adminAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		regionPort = freeRegionPort(t)
		demo = startChild(t, "demo", "--dns", dnsAddr, "--http", httpAddr, "--admin", adminAddr, "--region-port", strconv.Itoa(regionPort))
		if startedOrClash(t, demo, 30*time.Second, "the demo's instructions", func() bool {
			return strings.Contains(demo.stdout.String(), "meridian demo is running: DNS on "+dnsAddr)
		}) {
			break
		}
		if attempt == portClashAttempts {
			t.Fatalf("ports taken %d times in a row", attempt)
		}
	}
	cmd, exited := demo.cmd, demo.exited

	// London is steered to eu-west.
	poll(t, 10*time.Second, "a steered answer for London", func() bool {
		m := new(dns.Msg)
		m.SetQuestion("api.demo.test.", dns.TypeA)
		m.SetEdns0(1232, false)
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{81, 2, 69, 0}})
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, dnsAddr)
		return err == nil && len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "127.0.2.1"
	})

	get := func() (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/hello", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "web.demo.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "hello from eu-west\n" {
		t.Fatalf("proxy: got %d %q, want 200 from eu-west", code, body)
	}
	// eu-west fails its health checks; the region goes with the process.
	resp, err := http.Post(fmt.Sprintf("http://127.0.2.1:%d/fail", regionPort), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	moved := false
	for i := 0; i < 100 && !moved; i++ { // about 2s, bounded
		code, body := get()
		if code != 200 {
			t.Fatalf("request %d during the failover: got %d %q", i, code, body)
		}
		moved = body != "hello from eu-west\n"
		time.Sleep(20 * time.Millisecond)
	}
	if !moved {
		t.Error("the proxy still answers from eu-west after it failed")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("demo exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not exit after SIGTERM")
	}
}

// freeRegionPort is a port free on the three simulated regions' addresses.
func freeRegionPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		port := freePort(t)
		free := true
		for _, host := range []string{"127.0.1.1", "127.0.2.1", "127.0.3.1"} {
			ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no port free on 127.0.1.1, 127.0.2.1 and 127.0.3.1")
	return 0
}

// TestDemoRegionPort: a bad --region-port is refused, and a taken one
// ends the demo with a hint to choose another.
func TestDemoRegionPort(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--region-port", "0"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--region-port 0: want a port from 1 to 65535") {
		t.Errorf("port 0: exit %d, stderr %q", code, errb.String())
	}

	port := freeRegionPort(t)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.2.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out.Reset()
	errb.Reset()
	args := []string{"demo", "--region-port", strconv.Itoa(port),
		"--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
	if code := run(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "simulated region eu-west") || !strings.Contains(errb.String(), "choose another port with --region-port") {
		t.Errorf("taken port: exit %d, stderr %q", code, errb.String())
	}
}
