//go:build !(linux && (amd64 || arm64))

package dnsserver

import (
	"context"
	"net"
)

// listenUDP binds n UDP sockets to addr (SO_REUSEPORT when n > 1; a port
// of 0 is resolved by the first) and returns them ready to serve.
func listenUDP(ctx context.Context, addr string, n int) ([]udpConn, *net.UDPAddr, error) {
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reusePortControl
	}
	var out []udpConn
	var bound *net.UDPAddr
	for i := range n {
		a := addr
		if i > 0 {
			a = bound.String()
		}
		pc, err := lc.ListenPacket(ctx, "udp", a)
		if err != nil {
			for _, u := range out {
				_ = u.Close()
			}
			return nil, nil, err
		}
		c := pc.(*net.UDPConn)
		if i == 0 {
			bound = c.LocalAddr().(*net.UDPAddr)
		}
		out = append(out, plainUDP{c})
	}
	return out, bound, nil
}
