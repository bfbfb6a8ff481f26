//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package state

// lockFile is a no-op where flock is unavailable: the caller must make sure
// one process alone opens a state file.
func lockFile(string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
