package dnsserver

import (
	"errors"
	"net"
	"time"
)

// maxQuery is the largest UDP query read; longer datagrams are dropped.
// outSize is the initial room for an answer.
const (
	maxQuery = 4096
	outSize  = 4096
)

// plainUDP serves a socket one datagram at a time, for platforms without
// recvmmsg/sendmmsg. Answers leave from the socket's address, so bind
// specific addresses there rather than a wildcard.
type plainUDP struct {
	*net.UDPConn
}

func (u plainUDP) serve(s *Server) {
	buf := make([]byte, maxQuery)
	out := make([]byte, 0, outSize)
	for {
		n, from, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		start := time.Now()
		resp := s.answer(buf[:n], from.Addr().Unmap(), false, out)
		if resp == nil {
			continue
		}
		_, _ = u.WriteToUDPAddrPort(resp, from)
		s.m.observe(false, time.Since(start), 1)
		out = resp[:0]
	}
}
