// Package replica owns what this node knows of each region's data
// replica: it polls every replication.lag_url and keeps the last lag read,
// and it calls a region's promote hook. A lag that cannot be read is
// unknown, never 0.
//
// It does not steer and keeps no operator state: it imports no other
// meridian package but config, and the node decides what a lag means.
package replica
