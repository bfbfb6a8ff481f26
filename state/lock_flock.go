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
// so a crashed node never leaves the state locked. unlock removes the file
// (while still holding the lock) and releases it, so a clean stop leaves no
// lock file behind. A lock taken on a file that another process removed
// meanwhile is given up and taken again on the file now at path: two
// processes never both hold the lock of one path.
func lockFile(path string) (unlock func() error, err error) {
	for range 10 {
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
		if !samePath(f, path) {
			_ = f.Close() // removed by its last holder: take the new one
			continue
		}
		return func() error {
			rmErr := os.Remove(path)
			if errors.Is(rmErr, os.ErrNotExist) {
				rmErr = nil
			}
			return errors.Join(rmErr, f.Close()) // closing releases the lock
		}, nil
	}
	return nil, fmt.Errorf("locking %q: the lock file keeps being replaced", path)
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && os.SameFile(held, now)
}
