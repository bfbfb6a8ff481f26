// Package bgptest runs BGP route collectors for tests: an in-process GoBGP
// speaker, and a bird2 daemon and an FRR bgpd as child processes, each on loopback with a
// port of its own, and tells whether a prefix is in its table.
//
// It is for tests only; nothing in the product imports it.
package bgptest
