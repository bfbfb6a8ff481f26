//go:build race

package health

// raceEnabled is true when the tests run under the race detector, which
// slows every probe several times over.
const raceEnabled = true
