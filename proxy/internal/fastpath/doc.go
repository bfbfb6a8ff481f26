// Package fastpath is the proxy's HTTP/1.1 connection engine: sockets,
// buffers, upstream connection pools, the upstream round trip and the
// relays, the hand-off of connections to net/http, and accepting,
// tracking and stopping client connections. It decides nothing about
// where a request goes: the proxy does, through the one hook the engine
// calls per request (Server.Route), and every rule about the bytes on the
// wire is package h1's.
//
// The seam is made of concrete types, so that a proxied request makes no
// allocation and no interface call in the engine:
//
//   - Server (server.go) accepts (Accept, with net/http's back-off),
//     tracks, shuts down (Shutdown, CloseAll, Drained) and shortens the
//     idle wait of (ShortenIdle) one listener's connections; ServeConn
//     runs one. Its hooks, bound once by the proxy: Route for each
//     request parsed, ServeH2 for an HTTP/2 connection.
//   - Handoff (handoff.go) is the net.Listener the *http.Server serves:
//     a connection the fast path does not take goes there with the bytes
//     already read, and every later request on it is screened with the
//     fast path's framing rules on its way to net/http (screener.go).
//   - Conn (conn.go) is a client connection: its read loop (from inside
//     raw reads of the socket after the first request, so that no read is
//     tried that is bound to fail), the parsed request (Rq), the wire sent
//     upstream (Wire), the writer to the client (BW), WritePlain for
//     short answers, ReadBody, and Respond, which relays the upstream's
//     response (respond.go). screen.go refuses heads whose framing is
//     ambiguous before anything acts on them.
//   - Trip (trip.go) is the upstream side of one request, shared by the
//     HTTP/1.1 fast path and ServePlain (HTTP/2 requests): RoundTrip
//     takes a clean pooled connection (Pool, UpConn in upstream.go) or
//     dials one, sends the request, relays 1xx responses and reads the
//     final head, going again on a fresh connection when a pooled one
//     turns out stale; Relay (relay.go) relays the body to a Sink, an
//     HTTP/1.1 client's buffered writer or a writer that frames the body
//     itself.
//   - Buf (buf.go) is a read buffer; sys.go holds the raw non-blocking
//     reads and writes and says why they are raw.
package fastpath
