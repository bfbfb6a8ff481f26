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
package proxy
