package proxy

import (
	"log/slog"
	"net/http"
	"time"
)

// Client-facing limits of the servers built by Server.
const (
	// ReadHeaderTimeout cuts clients that send their request head slowly.
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes keep-alive connections that carry no request,
	// unless Limits.IdleTimeout says otherwise.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes bounds a request head; larger ones get 431.
	MaxHeaderBytes = 64 << 10
	// maxConcurrentStreams bounds the requests of one HTTP/2 connection.
	maxConcurrentStreams = 250
	// maxReadFrameSize is the largest HTTP/2 frame a client may send
	// (SETTINGS_MAX_FRAME_SIZE): the protocol's default, as HAProxy and
	// nginx have it, so that one frame cannot make the server buffer
	// more; a larger one is a connection error (FRAME_SIZE_ERROR).
	maxReadFrameSize = 16 << 10
	// h2WriteByteTimeout closes an HTTP/2 connection to which nothing
	// could be written for that long while there was something to write
	// (a client that stopped reading its socket), as nginx's send_timeout
	// does; flow-control waits do not count.
	h2WriteByteTimeout = 60 * time.Second
)

// Server returns an *http.Server for addr with the proxy as its handler,
// safe timeouts and HTTP/1.1 plus HTTP/2: over TLS by ALPN (when the
// caller's tls.Config offers h2) and on cleartext by prior knowledge (h2c).
// There is no read or write timeout on the whole connection, which would
// cut long responses and streams: request bodies are bounded by the
// service's timeout instead. The caller binds the listener and may set
// TLSConfig and Handler.
func (p *Proxy) Server(addr string) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	idle := p.conns.lim.IdleTimeout
	if idle <= 0 {
		idle = IdleTimeout
	}
	return &http.Server{
		Addr:              addr,
		Handler:           p,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		Protocols:         &protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: maxConcurrentStreams,
			MaxReadFrameSize:     maxReadFrameSize,
			WriteByteTimeout:     h2WriteByteTimeout,
			SendPingTimeout:      h2PingAfter,
			PingTimeout:          h2PingTimeout,
		},
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
}
