// Package health owns the health of regions and their endpoints as seen
// from this node: it probes every endpoint (http, https, tcp or none),
// applies rise/fall thresholds, measures probe round-trip times, takes
// passive signals from the proxy (ejecting endpoints that keep failing) and
// publishes the result as an immutable Snapshot swapped atomically, so that
// readers never wait.
//
// It does not steer: it knows nothing of services, dials or overrides, and
// it imports no other meridian package but config. Consumers learn of
// changes through Options.OnChange and read Checker.Snapshot.
package health
