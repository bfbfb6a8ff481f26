// Package fleet owns what the nodes sharing one etcd know of each other:
// each node's lease-bound registration (name, version, readiness, config
// hash, its own view of every region, its proxy counters), the list of
// live nodes built from them, the fleet's verdict on a region's health
// (health consensus), and lease-bound locks that let exactly one node run
// a shift.
//
// It talks to etcd through a *clientv3.Client the caller owns. It decides
// nothing about steering and reads no configuration file: the node hands
// it plain values and asks it plain questions.
package fleet
