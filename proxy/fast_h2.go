package proxy

import (
	"time"

	"github.com/meridian-edge/meridian/proxy/internal/fastpath"
	"github.com/meridian-edge/meridian/proxy/internal/h2"
)

// HTTP/2 connections, by ALPN or by prior knowledge (h2c), are served by
// the frame-level engine of package h2. Requests of plain services go to
// ServePlain straight from the stream (fast_h2_plain.go); the rest go
// through srv.Handler (the proxy, or the wrapper around it) as net/http
// would call it. The
// connection stays on the fast path's goroutine, counted in the
// connection limits, and shutdown sends GOAWAY and drains its streams.

// h2NetHTTP hands HTTP/2 connections to net/http's server instead, as
// before the engine; benchmarks compare the two with it. Serve reads it
// when it starts.
var h2NetHTTP = false

// h2Server is the listener's HTTP/2 engine, made on first use.
func (fs *fastServer) h2Server() *h2.Server {
	fs.h2once.Do(func() {
		srv := fs.srv
		maxStreams := uint32(maxConcurrentStreams)
		if srv.HTTP2 != nil && srv.HTTP2.MaxConcurrentStreams > 0 {
			maxStreams = uint32(min(srv.HTTP2.MaxConcurrentStreams, 1<<20)) //nolint:gosec // G115: bounded, positive
		}
		maxHeader := uint32(MaxHeaderBytes)
		if srv.MaxHeaderBytes > 0 {
			maxHeader = uint32(min(srv.MaxHeaderBytes, 1<<24)) //nolint:gosec // G115: bounded, positive
		}
		var writeTimeout, pingAfter, pingTimeout time.Duration
		if srv.HTTP2 != nil {
			writeTimeout = srv.HTTP2.WriteByteTimeout
			pingAfter, pingTimeout = srv.HTTP2.SendPingTimeout, srv.HTTP2.PingTimeout
		}
		fs.h2 = &h2.Server{
			WriteTimeout:         writeTimeout,
			PingAfter:            pingAfter,
			PingTimeout:          pingTimeout,
			Handler:              fs.serveStream,
			MaxConcurrentStreams: maxStreams,
			MaxHeaderListSize:    maxHeader,
			PrefaceTimeout:       fs.readHeader,
			IdleTimeout:          fs.idle,
			IdleNow:              fs.eng.IdleTimeout, // busy_idle_timeout under load
			Log:                  fs.p.log,
		}
	})
	return fs.h2
}

// serveH2 serves the connection as HTTP/2 until it closes; preread are
// the bytes of it already read.
func (fs *fastServer) serveH2(fc *fastpath.Conn, preread []byte) {
	if !fc.Active() && !fc.SetActive() {
		return // shutdown closed it first
	}
	_ = fc.C.SetDeadline(time.Time{}) // the engine sets its own
	fs.h2Server().ServeConn(fc.C, h2.ConnInfo{Remote: fc.C.RemoteAddr(), Peer: fc.Peer, TLS: fc.TLS, Preread: preread})
}

// shutdownH2 sends GOAWAY on the HTTP/2 connections; closeH2 closes them.
func (fs *fastServer) shutdownH2() { fs.h2Server().Shutdown() }
func (fs *fastServer) closeH2()    { fs.h2Server().Close() }
