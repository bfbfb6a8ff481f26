// Package dnsserver is meridian's authoritative DNS server. It answers for
// the configured zones: static records (inline and from master files), a
// synthesized SOA and NS set, and the steered service hostnames, whose
// answers come from policy decisions made per query for the client (the
// EDNS Client Subnet address when present, else the resolver's address).
// Answers to NS, MX and SRV queries carry the static addresses of their
// targets in the same zone in the additional section, left out first when
// an answer would not fit.
//
// Answers are precomputed in wire format per table generation, which Update
// builds from a config, a policy snapshot and health state, and swaps in
// atomically; queries never take a lock. The common query shape is answered
// from the raw bytes without allocating (fast.go); everything else goes
// through a general path built on github.com/miekg/dns (slow.go), which
// gives the same answers. On Linux (amd64, arm64) UDP is read and written
// in batches with recvmmsg/sendmmsg outside the runtime's poller
// (udp_mmsg.go); a socket under steady load keeps a P while it waits for
// the next query, so by default one P fewer than GOMAXPROCS serves UDP.
//
// Facing the internet, the server answers DNS cookies (RFC 7873, server
// cookies as RFC 9018 makes them, cookie.go, over internal/siphash) and
// rate-limits UDP answers per client prefix as BIND's RRL does (rrl.go),
// after either path has answered, so both give the same results; a client
// with a valid server cookie is not limited.
//
// The package serves DNS and nothing else: it makes no steering decisions
// of its own (package policy does), probes nothing (package health does)
// and keeps no operator state. It never recurses: RA is never set.
package dnsserver
