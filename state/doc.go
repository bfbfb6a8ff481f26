// Package state owns meridian's operator state: traffic dials, region health
// overrides, traffic shifts and their progress, and the audit log. It keeps
// them as one versioned Snapshot behind the small Store interface, so that a
// change made through the admin API is durable before it is answered and
// survives a restart.
//
// The file backend (OpenFile) stores the snapshot as one JSON document that
// is replaced atomically on every change; an etcd backend for fleets can
// satisfy the same interface, Watch included.
//
// The package does no HTTP and knows nothing about DNS, the proxy, steering
// or the configuration file format: callers pass it plain names (Prune) and
// decide what a change means before they make it.
package state
