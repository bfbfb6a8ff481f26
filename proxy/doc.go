// Package proxy is meridian's steering HTTP reverse proxy. It owns the
// http.Handler that routes a request by Host (and SNI) to a proxy-mode
// service, asks the policy which regions may serve the client, picks an
// endpoint in the first of them by health, weight and load, forwards the
// request with httputil.ReverseProxy, and on failure retries the next
// endpoint and then the next region, within the service's retry budget.
// It reports every upstream outcome to the health package (passive
// ejection) and exports per-region request, latency, retry and failover
// metrics.
//
// It does not make steering decisions (policy does), probe endpoints
// (health does), load certificates or bind listeners (the node and certs
// do); Server only builds an *http.Server with safe timeouts around the
// handler. Everything a request needs is precomputed per Update into an
// immutable table swapped atomically, so the hot path takes no locks.
//
// Serve adds a fast path in front of that server: HTTP/1.1 requests of
// services whose endpoints are all http are parsed in place and forwarded
// over pooled keep-alive upstream connections, with no allocation per
// request, through the same decision, endpoint choice, retry,
// health-report and metrics code as ServeHTTP. HTTP/2 connections (ALPN
// or h2c) it serves with the frame-level engine of proxy/internal/h2
// (fast_h2.go). Whatever else it does not take (HTTP/1.0, upgrades,
// Expect, chunked or larger-than-max_retry_body request bodies, sticky
// cookies, heads that do not parse cleanly or exceed 8 KiB) it hands,
// with the bytes already read, to the *http.Server, which keeps the
// connection. Differences that remain: while the upstream is still to
// answer, the fast path looks whether the client left once a second
// (net/http notices at once), and on TLS connections sees only a client
// that closed without a close_notify alert (after one, the request runs
// on and is counted with the upstream's status, not 499); it relays
// chunked bodies with their chunk boundaries as the upstream sent them,
// sniffs a missing Content-Type only for bodies that are not chunked
// (from the bytes at hand), and closes a connection whose request body it
// did not need (421, 503) instead of reading it.
//
// Requests that reach the proxy as HTTP/2 (the h2 engine, or net/http's
// server where Serve is not used) take the same upstream side when their
// service is plain: ServePlain (plain*.go) forwards a request described
// by a PlainRequest over the same pooled HTTP/1.1 upstream connections
// and relays the response to a PlainResponse, with the same steering,
// retries, health reports, metrics, access log, forwarding fields and
// framing checks, and no allocation of its own per request. The h2
// engine's streams call it directly (fast_h2_plain.go); ServeHTTP calls it
// through an adapter for HTTP/2 requests net/http's server received. A
// body of unknown length is read whole when it fits max_retry_body (then
// sent with Content-Length and replayable), else streamed chunked and not
// retried after it started. What ServePlain does not take (services that
// are not plain, CONNECT, upgrades, Expect, gRPC, requests declaring
// trailers) goes through ReverseProxy. Trailers of chunked upstream
// responses reach HTTP/2 clients as trailers.
//
// Where the rest lives. This package is steering, retries and forwarding:
// the routing table (table.go, route.go), the exchange with its decision,
// endpoint choice and retries (exchange.go, retry.go, pick.go), the
// requests it writes upstream (fast_request.go, plain_exchange.go), the
// net/http path (forward.go), metrics and the access log. The connection
// engine is proxy/internal/fastpath: accept, tracking and Shutdown, the
// client connections' read loops, buffers, raw socket I/O, upstream pools,
// the upstream round trip and the relays (shared by the fast path and
// ServePlain), and the hand-off to net/http; it calls the proxy once per
// request (fastServer.route, fast_route.go). Every rule about HTTP/1.1
// bytes on the wire is in proxy/internal/h1, which has no sockets and no
// proxy state and is fuzzed against net/http.
//
// Behaviour worth knowing:
//   - The original Host header is sent upstream (as Envoy, HAProxy and
//     Caddy do); endpoint URLs choose the scheme, address, SNI and an
//     optional base path.
//   - X-Forwarded-For, Forwarded, X-Forwarded-Host and X-Forwarded-Proto
//     from the client are kept (and appended to) only when the TCP peer is
//     in proxy.trusted_proxies; otherwise they are replaced.
//   - proxy.timeout bounds the whole exchange, except that for upgraded
//     connections (WebSocket), event streams (text/event-stream) and gRPC
//     it bounds only the wait for the response head.
//   - When retry_on lists timeout and retries > 0, each attempt waits for
//     the response head at most timeout/(retries+1), so that a retry still
//     has time to run.
//   - A response whose retry_on status is not retried (attempts or budget
//     exhausted, method not idempotent) is passed to the client as is; a
//     request no upstream answered gets 502, or 504 after a timeout; one
//     whose streamed body broke off or stalled gets 400 or 408, and is not
//     held against the endpoint.
//   - A retrying request holds one slot of its service's retry budget until
//     it ends, however many retries it makes. Retries after a connect
//     failure take no slot: the request never reached an upstream, so they
//     add no load (and a region whose upstreams all refuse fails over with
//     no failed request before passive ejection takes it out).
//   - A service with proxy.default takes requests whose Host matches no
//     service (instead of 421).
//   - sticky: cookie sets meridian_region=REGION:ENDPOINT-ID and honours it
//     while the region is in the decision; sticky: client-ip keeps a client
//     on one endpoint of its region by rendezvous hashing of its address.
//   - gRPC needs an https endpoint (HTTP/2 by ALPN); http endpoints are
//     spoken to in HTTP/1.1.
//   - The listeners Serve runs hold at most Options.Limits client
//     connections, in all and per source, whichever path serves them;
//     one over a limit is closed as soon as it is accepted. Shutdown
//     stops them and waits for their requests.
package proxy
