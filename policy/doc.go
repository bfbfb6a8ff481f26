// Package policy makes steering decisions: given an immutable Snapshot of
// regions (health, overrides, measured RTT) and services (policy, dials,
// geo rules) and a client, it returns the ordered list of regions to send
// the client to, and on request an explanation of why.
//
// It is pure: it does no I/O, starts no goroutines, reads no clock,
// environment or globals, and imports no other package of meridian. The DNS
// server and the proxy call it on their hot paths, so Decide does not
// allocate.
package policy
