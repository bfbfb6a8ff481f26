package dnsserver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"
)

// TCP buffer sizes: most queries and answers fit the initial ones.
const (
	tcpReadBuf  = 4096
	tcpWriteBuf = 4096
	acceptPause = 50 * time.Millisecond
)

// serveTCP accepts connections until the listener is closed.
func (s *Server) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: pause instead of spinning.
			s.log.Debug("accepting a dns connection", "err", err)
			time.Sleep(acceptPause)
			continue
		}
		if !s.lis.track(c, s.opts.MaxTCPConns) {
			_ = c.Close()
			continue
		}
		s.lis.wg.Go(func() {
			defer s.lis.untrack(c)
			defer func() { _ = c.Close() }()
			s.serveConn(c)
		})
	}
}

// serveConn answers the queries of one connection in order, pipelined
// ones included, until the client closes it, it stays idle for
// TCPIdleTimeout, or a message is malformed.
func (s *Server) serveConn(c net.Conn) {
	var src netip.Addr
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		src = ap.Addr().Unmap()
	}
	br := bufio.NewReaderSize(c, tcpReadBuf)
	bw := bufio.NewWriterSize(c, tcpWriteBuf)
	q := make([]byte, 512)
	out := make([]byte, 0, 512)
	var lenBuf [2]byte
	for {
		if br.Buffered() == 0 {
			if bw.Buffered() > 0 {
				if bw.Flush() != nil {
					return
				}
			}
			_ = c.SetReadDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
		}
		if _, err := io.ReadFull(br, lenBuf[:]); err != nil {
			_ = bw.Flush()
			return
		}
		l := int(lenBuf[0])<<8 | int(lenBuf[1])
		if l < headerLen {
			_ = bw.Flush()
			return
		}
		if l > cap(q) {
			q = make([]byte, l)
		}
		q = q[:l]
		if _, err := io.ReadFull(br, q); err != nil {
			return
		}
		start := time.Now()
		resp := s.answer(q, src, true, out)
		if resp == nil {
			continue
		}
		s.m.observe(true, time.Since(start), 1)
		out = resp[:0]
		if len(resp) > maxTCPSize {
			continue // cannot happen: answers are cut to fit
		}
		_ = c.SetWriteDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
		binary.BigEndian.PutUint16(lenBuf[:], clamp16(len(resp)))
		_, _ = bw.Write(lenBuf[:])
		if _, err := bw.Write(resp); err != nil {
			return
		}
	}
}
