//go:build !unix

package state

// syncDir is a no-op where directories cannot be fsynced; the rename's
// durability is then up to the file system.
func syncDir(string) error { return nil }
