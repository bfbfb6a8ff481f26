// Package h2 is the proxy's server side of HTTP/2 (RFC 9113, with HPACK,
// RFC 7541, from golang.org/x/net/http2/hpack): a connection engine on
// x/net/http2's Framer that hands each request stream to a handler with
// its fields as byte slices, and takes the response as frames appended
// to one write buffer per connection. It owns framing, flow control,
// stream states and the limits against abusive clients; it does not
// route or forward requests (package proxy does), nor speak HTTP/1.
//
// # Design
//
// One reader goroutine per connection parses frames and runs the state
// machine (idle, open, half-closed, closed; client streams odd and
// increasing). A stream's handler runs on a handler goroutine taken from
// the server's idle ones, or a new one: reused goroutines keep the stack
// a handler grew, which a goroutine per stream would grow again each
// time. Handlers append their frames to the connection's write buffer
// under its mutex and leave the writing to the connection's writer
// goroutine, which yields once when woken and then writes the whole
// buffer at once: the responses of the streams that complete while it
// wakes or writes share one write (through the proxy, about 0.37 writes
// per response at h2load -c16 -m8, against one per response when it
// wrote at once; that halved the engine's CPU per request), and
// the control frames of a burst of client frames (WINDOW_UPDATE, SETTINGS
// and PING acknowledgements) go out once the reader has consumed what it
// read.
//
// Responses are HPACK-encoded without the dynamic table (literal fields,
// names from the static table; a table size update opens the first block
// after the client changes SETTINGS_HEADER_TABLE_SIZE): the encoder has
// no state, so each stream encodes its head on its own goroutine,
// straight from byte slices. Request fields are kept as spans into one
// buffer per stream; streams and their buffers are pooled. On the native
// path a request costs no map, http.Request or context: the engine's own
// allocation per request is x/net's HeadersFrame.
//
// Flow control both ways: request DATA is taken up to the stream window
// (DefaultStreamWindow) and the connection window (DefaultConnWindow),
// and given back in WINDOW_UPDATEs of half a window as the handler reads;
// response DATA waits for the client's windows, which blocks that
// stream's handler alone, and is cut at the client's
// SETTINGS_MAX_FRAME_SIZE.
//
// ServeHTTP adapts a stream to an http.Handler (http.Request,
// ResponseWriter with Flusher, declared and http.TrailerPrefix trailers,
// Content-Type sniffing, Date, Content-Length for short bodies), for the
// requests the proxy does not take natively.
//
// # Limits and attacks
//
// SETTINGS_MAX_CONCURRENT_STREAMS (streams beyond it are refused with
// REFUSED_STREAM); a header list bound (RFC 9113 size: 431 beyond it, the
// handler never sees the request; a single string beyond it is a
// COMPRESSION_ERROR, as in x/net); the encoded size of one header block
// across CONTINUATION frames (ENHANCE_YOUR_CALM: CVE-2024-27316-style
// floods, empty frames counted at their header size); HPACK's dynamic
// table at the default 4096 bytes; client resets and refused streams
// past ResetBudget that outnumber completed streams (ENHANCE_YOUR_CALM,
// CVE-2023-44487; handlers of reset streams see Done closed and their
// reads and writes fail), and running handlers bounded to twice the
// stream limit; control frames queued while the client does not read
// (the connection is closed beyond maxQueuedControl); frames that do
// nothing (empty DATA, empty CONTINUATION: ENHANCE_YOUR_CALM beyond
// maxGlitches); the preface timeout, the idle timeout (GOAWAY NO_ERROR),
// a deadline on each write, and a PING to a client that sent nothing for
// PingAfter while it has streams open (closed when unanswered). Shutdown sends GOAWAY with the last
// stream opened; those streams complete, then the connection half-closes
// and reads on briefly so that its last frames are not lost to a reset.
//
// # Measured
//
// On a shared 2-core machine, h2load -c16 -m8 over h2c, 20,000 requests
// answered 200 with 64 bytes, CPU time of the serving process per
// request (relative figures: the machine was loaded by other work; the
// load generator is not counted):
//
//	go test -run '^$' -bench EngineH2Load -benchmem -benchtime 40000x ./proxy/internal/h2/
//	native handler           4.6–7.0 µs   1 alloc
//	http.Handler (adapter)  12.4–14.6 µs  24 allocs
//	net/http's h2 server    53.2–58.9 µs  34 allocs (same http.Handler)
//
// Through the proxy to a plain HTTP/1.1 upstream (in the same process,
// so its CPU is counted too), engine with ServePlain against net/http's
// HTTP/2 server with ServePlain behind its http.Handler:
//
//	go test -run '^$' -bench H2LoadCPU -benchmem -benchtime 20000x ./proxy/
//	h2c  engine 41.5–46.9 µs (2 allocs)  net/http 79.8–93.5 µs (41 allocs)
//	TLS  engine 42.3–46.8 µs (2 allocs)  net/http 85.6–90.8 µs (41 allocs)
//
// A CPU profile of the h2c engine run (39.7 µs per request) splits it:
// the in-process upstream 31% (about 12 µs, which a real upstream does
// not charge the proxy), ServePlain's exchange with the upstream 42%
// (about 17 µs, mostly its write and read system calls), the engine's
// reader 8% and writer 8% (about 3 µs each). Without the upstream, a
// proxied HTTP/2 request costs about 27 µs. The engine alone costs a
// tenth of net/http's HTTP/2 server, and the whole path about half.
package h2
