// Package anycast announces the node's service prefixes over BGP while the
// node is fit to serve and withdraws them when it is not (SPEC section 9):
// an in-process GoBGP speaker, the node's self-check of its own DNS and
// proxy listeners, and the rise/fall/hold-down logic that decides between
// the two.
//
// It owns the BGP sessions and the decision to announce; it does not serve
// DNS or HTTP, read the configuration file, or persist anything: the node
// tells it when it is ready, draining or shutting down.
package anycast
