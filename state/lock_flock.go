//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package state

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking flock on the file at path,
// creating it when missing. The kernel drops the lock when the process dies,
// so a crashed node never leaves the state locked.
func lockFile(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("in use by another process (lock %q is held)", path)
		}
		return nil, fmt.Errorf("locking %q: %w", path, err)
	}
	return f.Close, nil // closing the descriptor releases the lock
}
