//go:build linux && (amd64 || arm64)

package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reusePortSupported: listenUDP binds several sockets to one address.
const reusePortSupported = true

// UDP batching: each recvmmsg takes up to udpBatch datagrams and one
// sendmmsg sends their answers.
const (
	udpBatch = 64
	ctrlSize = 128 // room for an IP_PKTINFO or IPV6_PKTINFO message and more
	// busyWait is how long a read waits, holding its P, for the next
	// query while queries keep coming; idleWait bounds a read once the
	// socket has gone quiet (Close wakes reads at once in either case).
	busyWait = 100 * time.Microsecond
	idleWait = time.Second
)

// Socket states: a socket is closed by Close directly while idle, by its
// serving loop once Close has woken it otherwise.
const (
	sockIdle int32 = iota
	sockServing
	sockClosed
)

// mmsgUDP serves one UDP socket outside the runtime's poller: a blocking
// recvmmsg (MSG_WAITFORONE) takes whatever datagrams are queued and their
// answers leave in one sendmmsg, over buffers allocated once. There is no
// poller round trip per batch and no allocation per datagram (the x/net
// batch API allocates a net.Addr for each). On wildcard addresses it asks
// for each datagram's destination (PKTINFO) and answers from it.
type mmsgUDP struct {
	fd      int
	pktinfo bool
	state   atomic.Int32 // sockIdle, sockServing or sockClosed
	done    chan struct{}

	rh    [udpBatch]unix.Mmsghdr
	riov  [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6
	ctrl  [udpBatch][ctrlSize]byte
	bufs  [udpBatch][maxQuery]byte
	outs  [udpBatch][]byte
	sh    [udpBatch]unix.Mmsghdr
	siov  [udpBatch]unix.Iovec
}

// listenUDP binds n UDP sockets to addr (SO_REUSEPORT when n > 1; a port
// of 0 is resolved by the first).
func listenUDP(ctx context.Context, addr string, n int) ([]udpConn, *net.UDPAddr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	if host == "" {
		host = "::" // all addresses, IPv4 and IPv6, as the net package does
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil || len(ips) == 0 {
			return nil, nil, fmt.Errorf("resolving %q: %w", host, lerr)
		}
		ip = ips[0]
	}
	p, err := net.LookupPort("udp", port)
	if err != nil {
		return nil, nil, err
	}
	ap := netip.AddrPortFrom(ip.Unmap().WithZone(""), clamp16(p))
	var out []udpConn
	for i := range n {
		u, bound, err := newMmsgUDP(ap, n > 1)
		if err != nil {
			for _, c := range out {
				_ = c.Close()
			}
			return nil, nil, err
		}
		if i == 0 {
			ap = bound
		}
		out = append(out, u)
	}
	return out, net.UDPAddrFromAddrPort(ap), nil
}

func newMmsgUDP(ap netip.AddrPort, reuse bool) (*mmsgUDP, netip.AddrPort, error) {
	ip := ap.Addr()
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, ap, fmt.Errorf("udp socket: %w", err)
	}
	fail := func(what string, err error) (*mmsgUDP, netip.AddrPort, error) {
		_ = unix.Close(fd)
		return nil, ap, fmt.Errorf("udp socket: %s: %w", what, err)
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	tv := unix.NsecToTimeval(busyWait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("SO_RCVTIMEO", err)
	}
	pktinfo := ip.IsUnspecified()
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
		if pktinfo {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
				return fail("IP_PKTINFO", err)
			}
		}
	} else {
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
		v6only := 1
		if pktinfo {
			v6only = 0 // "[::]" takes IPv4 too, as the net package does
			// IPv4 datagrams arrive with IPV6_PKTINFO too, the
			// address IPv4-mapped, which sendmsg takes back.
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
				return fail("IPV6_RECVPKTINFO", err)
			}
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	switch l := local.(type) {
	case *unix.SockaddrInet4:
		ap = netip.AddrPortFrom(netip.AddrFrom4(l.Addr), clamp16(l.Port))
	case *unix.SockaddrInet6:
		ap = netip.AddrPortFrom(netip.AddrFrom16(l.Addr), clamp16(l.Port))
	}

	u := &mmsgUDP{fd: fd, pktinfo: pktinfo, done: make(chan struct{})}
	for i := range udpBatch {
		u.riov[i].Base = &u.bufs[i][0]
		u.riov[i].SetLen(maxQuery)
		h := &u.rh[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&u.names[i])) //nolint:gosec // G103: msghdr takes a sockaddr buffer
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &u.riov[i]
		h.SetIovlen(1)
		if pktinfo {
			h.Control = &u.ctrl[i][0]
			h.SetControllen(ctrlSize)
		}
		u.outs[i] = make([]byte, 0, outSize)
		u.sh[i].Hdr.Iov = &u.siov[i]
		u.sh[i].Hdr.SetIovlen(1)
	}
	return u, ap, nil
}

// Close stops the serving loop (waking a blocked read) and releases the
// socket once the loop is out of it.
func (u *mmsgUDP) Close() error {
	for {
		switch st := u.state.Load(); st {
		case sockClosed:
			return nil
		case sockIdle:
			if u.state.CompareAndSwap(st, sockClosed) {
				close(u.done)
				return unix.Close(u.fd)
			}
		case sockServing:
			if u.state.CompareAndSwap(st, sockClosed) {
				_ = unix.Shutdown(u.fd, unix.SHUT_RDWR)
				<-u.done
				return nil
			}
		}
	}
}

// serve answers datagrams until the socket is closed. While queries keep
// coming it waits for them in a raw recvmmsg (the runtime is not told, so
// the thread keeps its P and no scheduler or sysmon work happens per
// batch) bounded by busyWait, and yields after every batch so that other
// goroutines run. After busyWait without a query it waits in a normal
// blocking system call, which hands the P back to the runtime.
func (u *mmsgUDP) serve(s *Server) {
	if !u.state.CompareAndSwap(sockIdle, sockServing) {
		return // closed before it started
	}
	defer func() {
		_ = unix.Close(u.fd)
		close(u.done)
	}()
	busy, nread := true, udpBatch
	for u.state.Load() == sockServing {
		for i := range nread {
			h := &u.rh[i].Hdr
			h.Namelen = unix.SizeofSockaddrInet6
			h.Flags = 0
			if u.pktinfo {
				h.SetControllen(ctrlSize)
			}
		}
		nread = 0
		var r uintptr
		var e unix.Errno
		if busy {
			r, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.rh[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0) //nolint:gosec // G103: system call
			if e == unix.EAGAIN {
				busy = false
				u.setTimeout(idleWait)
				continue
			}
		} else {
			r, _, e = unix.Syscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.rh[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0) //nolint:gosec // G103: system call
			if e == 0 && r > 0 {
				busy = true
				u.setTimeout(busyWait)
			}
		}
		if e != 0 || r == 0 {
			if e != 0 && e != unix.EAGAIN && e != unix.EINTR && u.state.Load() == sockServing {
				s.log.Debug("reading udp", "err", e)
			}
			continue
		}
		nread = int(r)
		start := time.Now()
		n := u.answerBatch(s, nread)
		u.sendAll(n)
		s.m.observe(false, time.Since(start), n)
		runtime.Gosched()
	}
}

// setTimeout sets how long a blocked read waits before it returns EAGAIN.
func (u *mmsgUDP) setTimeout(d time.Duration) {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	_ = unix.SetsockoptTimeval(u.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

// answerBatch answers the nread datagrams received and prepares their
// send headers; it returns how many answers there are.
func (u *mmsgUDP) answerBatch(s *Server, nread int) int {
	n := 0
	for i := range nread {
		h := &u.rh[i]
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			continue
		}
		resp := s.answer(u.bufs[i][:h.Len], sockaddrIP(&u.names[i]), false, u.outs[i][:0])
		if len(resp) == 0 {
			continue
		}
		u.outs[i] = resp[:0]
		sh := &u.sh[n].Hdr
		sh.Name, sh.Namelen = h.Hdr.Name, h.Hdr.Namelen
		u.siov[n].Base = &resp[0]
		u.siov[n].SetLen(len(resp))
		sh.Control = nil
		sh.SetControllen(0)
		if cl := h.Hdr.Controllen; u.pktinfo && cl > 0 && cl <= ctrlSize && h.Hdr.Flags&unix.MSG_CTRUNC == 0 {
			replySource(u.ctrl[i][:cl])
			sh.Control = &u.ctrl[i][0]
			sh.Controllen = cl
		}
		n++
	}
	return n
}

// sendAll sends the first n prepared answers without blocking (a raw
// system call: sending is CPU work, not waiting); one that cannot be sent
// now is dropped, as a congested network would.
func (u *mmsgUDP) sendAll(n int) {
	for sent := 0; sent < n; {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.sh[sent])), uintptr(n-sent), unix.MSG_DONTWAIT, 0, 0) //nolint:gosec // G103: system call
		switch e {
		case 0:
			sent += int(r)
		case unix.EINTR:
		default:
			sent++
		}
	}
}

// sockaddrIP returns the address of a received socket address.
func sockaddrIP(sa *unix.RawSockaddrInet6) netip.Addr {
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa)) //nolint:gosec // G103: sockaddr_in in a sockaddr_in6 buffer
		return netip.AddrFrom4(sa4.Addr)
	}
	return netip.AddrFrom16(sa.Addr).Unmap()
}

// replySource turns received PKTINFO control messages into ones that send
// the answer from the address the query was sent to, on whatever interface
// the routing picks (link-local IPv6 keeps its interface).
func replySource(b []byte) {
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0])) //nolint:gosec // G103: control message header
		if h.Len < unix.SizeofCmsghdr || h.Len > uint64(len(b)) {
			return
		}
		l := int(h.Len) //nolint:gosec // G115: at most len(b)
		data := b[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= 12:
			clear(data[0:4])            // ipi_ifindex
			copy(data[4:8], data[8:12]) // ipi_spec_dst = ipi_addr
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= 20:
			if !netip.AddrFrom16([16]byte(data[:16])).IsLinkLocalUnicast() {
				clear(data[16:20]) // ipi6_ifindex
			}
		}
		next := (l + 7) &^ 7
		if next >= len(b) {
			return
		}
		b = b[next:]
	}
}
