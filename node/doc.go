// Package node assembles a running meridian edge node from a config: it
// owns the metrics registry, the operator state store and the one place
// where config, health and operator state meet to become an immutable
// policy snapshot, which it publishes to the DNS server and the proxy. It
// offers the admin API its operations (dials, overrides, explain, reload)
// and runs the node's lifecycle (start, readiness, drain, shutdown), and
// the runners that work from stored state: shifts, failovers (section 10's
// runbook) and drills.
//
// It must not hold a lock on any query or request path: readers only load
// the published snapshot.
package node
