// Package repotest holds tests about the repository as a whole rather than
// about one package: every package carries a doc comment, and the steering
// core in policy stays pure (no I/O, no clock, no goroutines, no other
// meridian package).
//
// It has no code of its own and must never be imported.
package repotest
