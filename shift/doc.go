// Package shift owns the arithmetic of staged traffic shifts: the
// cumulative request counters the proxy keeps per service and region
// (Counters, with a fixed log-spaced latency histogram), the window between
// two readings of them (Window: error ratio and interpolated quantiles),
// the guard that judges a window against a shift's limits (Judge,
// JudgeHealth), which regions gain traffic from a step (Gaining), and the
// step machine that moves a state.Shift on (Advance, Finish, Rollback,
// Abort).
//
// It is a separate package so that the proxy can record into the same
// Counters the node judges, without either importing the other. It does no
// I/O, starts no goroutines and reads no clock: times and durations are
// passed in, so every rule can be tested on exact inputs.
package shift
