package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// FileOptions tune a file store. The zero value is ready to use.
type FileOptions struct {
	Now      func() time.Time // clock for audit times; nil = time.Now
	Logger   *slog.Logger     // nil = slog.Default()
	AuditCap int              // audit entries kept; <= 0 = DefaultAuditCap
}

// File is the file backend of Store: the whole state as one JSON document,
// replaced atomically (temporary file in the same directory, fsync, rename,
// fsync of the directory) on every change, so a crash leaves either the old
// or the new state on disk, never a mix.
//
// One process owns the file while it is open: OpenFile takes an exclusive
// lock on PATH.lock (left in place after Close) and refuses a file another
// process holds. The file is read once, at open; edit it by hand only while
// no node runs. Because nothing else can change the file, Watch delivers no
// snapshots: its channel only closes, when ctx ends or the store closes.
type File struct {
	path     string
	now      func() time.Time
	log      *slog.Logger
	auditCap int

	writeMu sync.Mutex               // serialises Update and the end of Close
	cur     atomic.Pointer[Snapshot] // published state, never edited in place

	lifeMu   sync.Mutex // orders Watch registration against Close
	closed   atomic.Bool
	done     chan struct{}
	watchers sync.WaitGroup
	unlock   func() error
}

var _ Store = (*File)(nil)

var errClosed = errors.New("state store closed")

// OpenFile opens the state file at path, creating nothing until the first
// change: a missing file is the empty state. It removes temporary files a
// crash left behind. A file of a newer format version, one that does not
// parse or one that fails Validate is an error naming the file.
func OpenFile(path string, opts FileOptions) (*File, error) {
	if path == "" {
		return nil, errors.New("opening state file: empty path")
	}
	f := &File{
		path:     path,
		now:      opts.Now,
		log:      opts.Logger,
		auditCap: opts.AuditCap,
		done:     make(chan struct{}),
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.log = f.log.With("component", "state", "path", path)
	if f.auditCap <= 0 {
		f.auditCap = DefaultAuditCap
	}

	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("opening state file %q: %w", path, err)
	}
	removed, err := removeTemps(path)
	if err != nil {
		_ = unlock()
		return nil, fmt.Errorf("opening state file %q: %w", path, err)
	}
	for _, name := range removed {
		f.log.Warn("removed temporary state file left by an interrupted write", "file", name)
	}
	snap, err := readFile(path)
	if err != nil {
		_ = unlock()
		return nil, err
	}
	snap.Audit = capAudit(snap.Audit, nil, f.auditCap)
	f.cur.Store(&snap)
	f.unlock = unlock
	f.log.Debug("state opened", "generation", snap.Generation)
	return f, nil
}

// Path returns the file the store writes.
func (f *File) Path() string { return f.path }

// Load returns a deep copy of the current state.
func (f *File) Load() (Snapshot, error) {
	if f.closed.Load() {
		return Snapshot{}, fmt.Errorf("loading state: %w", errClosed)
	}
	return f.cur.Load().Clone(), nil
}

// Update implements Store. If fn fails, or the result fails Validate, nothing
// is written and the state is unchanged. If writing fails before the new file
// replaces the old one, the state is unchanged too; if only the final
// directory fsync fails, the new state is kept (it is what the file holds)
// but the error is returned, as the change may not survive a power loss.
func (f *File) Update(fn func(*Snapshot) error, audit ...AuditEntry) (Snapshot, error) {
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	if f.closed.Load() {
		return Snapshot{}, fmt.Errorf("updating state: %w", errClosed)
	}
	cur := f.cur.Load()
	next := cur.Clone()
	if err := fn(&next); err != nil {
		return Snapshot{}, err
	}
	next.Version = FormatVersion
	next.Generation = cur.Generation + 1
	next.Audit = capAudit(cur.Audit, f.stamp(cur.Audit, audit), f.auditCap)
	next.normalize()
	if err := next.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("updating state: invalid result: %w", err)
	}
	replaced, err := writeAtomic(f.path, &next)
	if replaced {
		f.cur.Store(&next)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("writing state file %q: %w", f.path, err)
	}
	f.log.Debug("state written", "generation", next.Generation, "audit_entries", len(audit))
	return next.Clone(), nil
}

// stamp fills Seq (continuing from the newest entry of old) and, when zero,
// Time of a copy of entries.
func (f *File) stamp(old, entries []AuditEntry) []AuditEntry {
	if len(entries) == 0 {
		return nil
	}
	var seq uint64
	if len(old) > 0 {
		seq = old[len(old)-1].Seq
	}
	now := f.now().UTC()
	out := make([]AuditEntry, len(entries))
	for i, e := range entries {
		seq++
		e.Seq = seq
		if e.Time.IsZero() {
			e.Time = now
		}
		out[i] = e
	}
	return out
}

// capAudit returns a new slice holding the newest limit entries of old
// followed by added.
func capAudit(old, added []AuditEntry, limit int) []AuditEntry {
	all := len(old) + len(added)
	skip := max(0, all-limit)
	out := make([]AuditEntry, 0, all-skip)
	if skip < len(old) {
		out = append(out, old[skip:]...)
		return append(out, added...)
	}
	return append(out, added[skip-len(old):]...)
}

// Watch implements Store. No other process can change a file the store
// holds, so the channel never carries a snapshot: it is closed when ctx ends
// or the store is closed.
func (f *File) Watch(ctx context.Context) <-chan Snapshot {
	ch := make(chan Snapshot)
	f.lifeMu.Lock()
	defer f.lifeMu.Unlock()
	if f.closed.Load() || ctx.Err() != nil {
		close(ch)
		return ch
	}
	f.watchers.Add(1)
	go func() {
		defer f.watchers.Done()
		select {
		case <-ctx.Done():
		case <-f.done:
		}
		close(ch)
	}()
	return ch
}

// Close waits for an Update in progress, closes every Watch channel and
// releases the lock. Later calls of Load and Update fail.
func (f *File) Close() error {
	f.lifeMu.Lock()
	if f.closed.Swap(true) {
		f.lifeMu.Unlock()
		return nil
	}
	close(f.done)
	f.lifeMu.Unlock()
	f.watchers.Wait()

	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	if err := f.unlock(); err != nil {
		return fmt.Errorf("closing state file %q: %w", f.path, err)
	}
	return nil
}

// ReadFile reads and checks a state file without locking or changing it;
// a missing file is Empty(). `meridian validate` reads the state with it.
func ReadFile(path string) (Snapshot, error) { return readFile(path) }

// readFile reads and checks the state file; a missing file is Empty().
func readFile(path string) (Snapshot, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Empty(), nil
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading state file: %w", err)
	}
	snap, err := decode(b)
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading state file %q: %w", path, err)
	}
	return snap, nil
}
