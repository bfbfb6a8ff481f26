// Package h2 is the proxy's server side of HTTP/2 (RFC 9113, with HPACK
// from golang.org/x/net/http2/hpack): a connection engine on
// x/net/http2's Framer that hands each request stream to a handler with
// its fields as byte slices, and takes the response as frames appended
// to one write buffer per connection. It owns framing, flow control,
// stream states and the limits against abusive clients; it does not
// route or forward requests (package proxy does), nor speak HTTP/1.
//
// # Design
//
// One reader goroutine per connection parses frames and runs the state
// machine; every stream's handler runs on a goroutine of its own. Frames
// are appended to the connection's write buffer under its mutex, and the
// goroutine that finds no write in progress writes the whole buffer (and
// what is appended meanwhile) in one write: responses of many streams
// completed at about the same time share a system call, and no writer
// goroutine sits between a handler and the socket. Control frames the
// reader queues go out through a writer goroutine once the reader has
// consumed what it read, so a burst of frames costs one write.
//
// Responses are HPACK-encoded without the dynamic table (literal fields,
// names from the static table): the encoder has no state, so each stream
// encodes its head on its own goroutine straight from byte slices.
// Streams and their buffers are pooled; a request needs no map, no
// http.Request and no context on the native path.
//
// Limits: SETTINGS_MAX_CONCURRENT_STREAMS (streams beyond it refused), a
// header list bound (431 beyond it; a connection error when a single
// field exceeds it, as HPACK cannot skip it), a bound on the encoded
// size of a header block across CONTINUATION frames, resets and refused
// streams past a budget that outnumber completed ones (ENHANCE_YOUR_CALM,
// CVE-2023-44487), control frames queued while the client does not read
// (close), frames that do nothing (ENHANCE_YOUR_CALM), the preface
// timeout, the idle timeout and a timeout on each write.
package h2
