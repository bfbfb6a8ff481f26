// Command h1load measures an HTTP/1.1 server holding many keep-alive
// connections at a fixed request rate, on loopback only: it opens -conns
// connections (spread over the -sources addresses, so that more than one
// address's ports can be used), sends requests at -rate per second in
// turn over them (open loop, as wrk2 does: a request's latency counts from
// when it was due, so a stalled server is not hidden by a waiting client)
// and reports the latency distribution, and with -pid the server's CPU
// time per request and its resident memory. Every run is bounded by
// -duration and -max-requests. With -serve it is instead a minimal
// keep-alive upstream answering every request with a fixed 200.
//
// It is a measuring tool for the proxy's Performance notes, not part of
// the node.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.target, "url", "http://127.0.0.1:8080/", "URL to load (loopback only)")
	flag.StringVar(&o.host, "host", "", "Host header (default: the URL's host)")
	flag.IntVar(&o.conns, "conns", 64, "keep-alive connections to hold")
	flag.IntVar(&o.rate, "rate", 5000, "requests per second, over all connections")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "load before measuring")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured load")
	flag.IntVar(&o.maxRequests, "max-requests", 2_000_000, "stop after this many requests")
	flag.StringVar(&o.sources, "sources", "127.0.0.1", "source addresses, comma-separated or a range 127.0.0.1-127.0.0.8")
	flag.IntVar(&o.pid, "pid", 0, "the server's process, for CPU and memory figures")
	flag.DurationVar(&o.dialTime, "dial-time", 2*time.Minute, "limit on opening the connections")
	serve := flag.String("serve", "", "serve as the upstream on this loopback address instead")
	flag.Parse()
	if *serve != "" {
		err := upstream(*serve) // serves until it fails
		fmt.Fprintln(os.Stderr, "h1load:", err)
		os.Exit(1)
	}
	if err := run(&o); err != nil {
		fmt.Fprintln(os.Stderr, "h1load:", err)
		os.Exit(1)
	}
}

type options struct {
	target, host, sources  string
	conns, rate, pid       int
	maxRequests            int
	warmup, duration       time.Duration
	dialTime               time.Duration
	addr                   string
	request                []byte
	srcAddrs               []netip.Addr
	measureFrom, measureTo int64 // request indexes measured
}

func (o *options) prepare() error {
	u, err := url.Parse(o.target)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-url %q: want an http URL", o.target)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("-url %q: want a loopback address and port", o.target)
	}
	o.addr = u.Host
	if o.host == "" {
		o.host = u.Host
	}
	path := u.RequestURI()
	o.request = []byte("GET " + path + " HTTP/1.1\r\nHost: " + o.host + "\r\nUser-Agent: h1load\r\nAccept: */*\r\n\r\n")
	if o.srcAddrs, err = parseSources(o.sources); err != nil {
		return err
	}
	if o.conns <= 0 || o.rate <= 0 || o.duration <= 0 || o.maxRequests <= 0 {
		return errors.New("-conns, -rate, -duration and -max-requests must be positive")
	}
	return nil
}

// parseSources reads "a,b" or "a-b" (a range of the last octet).
func parseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := netip.ParseAddr(lo)
		if err != nil || !a.Is4() || !a.IsLoopback() {
			return nil, fmt.Errorf("-sources: %q is not an IPv4 loopback address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(hi)
		if err != nil || !b.IsLoopback() || b.Less(a) || b.As4()[3]-a.As4()[3] > 200 {
			return nil, fmt.Errorf("-sources: bad range %q", part)
		}
		for x := a; !b.Less(x); x = x.Next() {
			out = append(out, x)
		}
	}
	return out, nil
}

// lconn is one held connection: it sends the requests due on it, one at a
// time, and records each one's latency from when it was due.
type lconn struct {
	c   net.Conn
	br  *bufio.Reader
	due chan int64 // indexes of the requests due on it
}

type result struct {
	lat     []int64 // nanoseconds, by request index; 0: not done
	errs    atomic.Int64
	late    atomic.Int64 // requests that found their connection's queue full
	done    atomic.Int64
	started time.Time
}

func run(o *options) error {
	if err := o.prepare(); err != nil {
		return err
	}
	conns, err := dialAll(o)
	defer func() {
		for _, lc := range conns {
			_ = lc.c.Close() // the run is over
		}
	}()
	if err != nil {
		return err
	}
	rssIdle := rss(o.pid)
	warm := int64(o.warmup.Seconds() * float64(o.rate))
	total := warm + int64(o.duration.Seconds()*float64(o.rate))
	total = min(total, int64(o.maxRequests))
	o.measureFrom, o.measureTo = min(warm, total), total
	res := &result{lat: make([]int64, total)}
	var wg sync.WaitGroup
	for _, lc := range conns {
		wg.Go(func() { lc.serve(o, res) })
	}
	interval := time.Second / time.Duration(o.rate)
	res.started = time.Now()
	var cpu0, cpu1 float64
	var t0, t1 time.Time
	for i := int64(0); i < total; i++ {
		if i == o.measureFrom {
			cpu0, t0 = cpuSeconds(o.pid), time.Now()
		}
		dueAt := res.started.Add(time.Duration(i) * interval)
		if d := time.Until(dueAt); d > 200*time.Microsecond {
			time.Sleep(d)
		}
		lc := conns[i%int64(len(conns))]
		select {
		case lc.due <- i:
		default:
			res.late.Add(1) // its connection is hopelessly behind
		}
	}
	for _, lc := range conns {
		close(lc.due)
	}
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(30 * time.Second):
		fmt.Println("warning: requests still outstanding after 30s")
	}
	cpu1, t1 = cpuSeconds(o.pid), time.Now()
	report(o, res, cpu1-cpu0, t1.Sub(t0), rssIdle)
	return nil
}

// dialAll opens the connections, 64 at a time, within -dial-time, and
// sends one request on each.
func dialAll(o *options) ([]*lconn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.dialTime)
	defer cancel()
	conns := make([]*lconn, o.conns)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			src := o.srcAddrs[i%len(o.srcAddrs)]
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
			c, err := d.DialContext(ctx, "tcp", o.addr)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("connection %d from %s: %w", i, src, err)
				}
				mu.Unlock()
				return
			}
			lc := &lconn{c: c, br: bufio.NewReaderSize(c, 1024), due: make(chan int64, 256)}
			// One request at once: a server may close a connection whose
			// first request takes long to come.
			_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a failure fails the request
			if _, err = c.Write(o.request); err == nil {
				err = readResponse(lc.br)
			}
			if err != nil {
				_ = c.Close() // not usable
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("first request on connection %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			conns[i] = lc
		})
	}
	wg.Wait()
	held := slices.DeleteFunc(conns, func(lc *lconn) bool { return lc == nil })
	return held, firstErr
}

func (lc *lconn) serve(o *options, res *result) {
	broken := false
	for i := range lc.due {
		if broken {
			res.errs.Add(1)
			continue
		}
		_ = lc.c.SetDeadline(time.Now().Add(10 * time.Second)) // a failure fails the request
		if _, err := lc.c.Write(o.request); err != nil {
			broken = true
			res.errs.Add(1)
			continue
		}
		if err := readResponse(lc.br); err != nil {
			broken = true
			res.errs.Add(1)
			continue
		}
		due := res.started.Add(time.Duration(i) * (time.Second / time.Duration(o.rate)))
		res.lat[i] = max(int64(time.Since(due)), 1)
		res.done.Add(1)
	}
}

// readResponse reads one response with a Content-Length body.
func readResponse(br *bufio.Reader) error {
	clen := -1
	status := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if !status {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				return fmt.Errorf("status line %q", line)
			}
			status = true
			continue
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if clen, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return err
			}
		}
	}
	if clen < 0 {
		return errors.New("no Content-Length")
	}
	_, err := br.Discard(clen)
	return err
}

func report(o *options, res *result, cpu float64, window time.Duration, rssIdle int64) {
	lat := make([]int64, 0, o.measureTo-o.measureFrom)
	for _, l := range res.lat[o.measureFrom:o.measureTo] {
		if l > 0 {
			lat = append(lat, l)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) string {
		if len(lat) == 0 {
			return "-"
		}
		i := min(int(p/100*float64(len(lat))), len(lat)-1)
		return fmt.Sprintf("%.3f", float64(lat[i])/1e6)
	}
	fmt.Printf("conns %d rate %d/s measured %d requests in %.1fs (errors %d, late %d)\n",
		o.conns, o.rate, len(lat), window.Seconds(), res.errs.Load(), res.late.Load())
	fmt.Printf("latency ms: p50 %s p90 %s p99 %s p99.9 %s max %s\n", pct(50), pct(90), pct(99), pct(99.9), pct(100))
	if o.pid > 0 && len(lat) > 0 {
		fmt.Printf("server: cpu %.2fs, %.2f us/request; rss idle %d MiB, after %d MiB, peak %d MiB\n",
			cpu, cpu/float64(len(lat))*1e6, rssIdle>>20, rss(o.pid)>>20, peakRSS(o.pid)>>20)
	}
}

// cpuSeconds is the process's user and system time from /proc.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the line.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

func rss(pid int) int64     { return statusBytes(pid, "VmRSS:") }
func peakRSS(pid int) int64 { return statusBytes(pid, "VmHWM:") }

func statusBytes(pid int, field string) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// upstream answers every request on addr with a fixed 200, keeping
// connections alive.
func upstream(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("-serve %q: want a loopback address and port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	const resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n"
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			n := 0
			for {
				k, err := c.Read(buf[n:])
				if err != nil {
					return
				}
				n += k
				for {
					end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
					if end < 0 {
						break
					}
					if _, err := io.WriteString(c, resp); err != nil {
						return
					}
					n = copy(buf, buf[end+4:n])
				}
				if n == len(buf) {
					return // a head too large for a benchmark
				}
			}
		}()
	}
}
