package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// decode parses a state document: the format version first, so that a file
// from a newer build is named as such rather than misread, then the rest.
func decode(b []byte) (Snapshot, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return Snapshot{}, errors.New("file is empty")
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Snapshot{}, fmt.Errorf("parsing: %w", locate(b, err))
	}
	switch {
	case head.Version == nil:
		return Snapshot{}, errors.New("no format version")
	case *head.Version > FormatVersion:
		return Snapshot{}, fmt.Errorf("format version %d is newer than this build reads (%d)", *head.Version, FormatVersion)
	case *head.Version < 1:
		return Snapshot{}, fmt.Errorf("unknown format version %d", *head.Version)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return Snapshot{}, fmt.Errorf("parsing: %w", locate(b, err))
	}
	s.normalize()
	if err := s.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("invalid: %w", err)
	}
	return s, nil
}

// locate prefixes a JSON error that carries a byte offset with the line and
// column in b of the byte it stopped at.
func locate(b []byte, err error) error {
	var off int64
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return err
	}
	off = min(max(off-1, 0), int64(len(b))) // Offset counts the bad byte
	before := b[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// encode renders s as the state document, indented for people reading it.
func encode(s *Snapshot) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	return append(b, '\n'), nil
}

// tempPrefix names the temporary files written next to the state file at
// path; OpenFile removes leftovers by this prefix.
func tempPrefix(path string) string {
	return "." + filepath.Base(path) + ".tmp-"
}

// writeAtomic replaces the file at path with s: it writes a temporary file in
// the same directory, fsyncs it, renames it over path and fsyncs the
// directory. replaced reports whether the rename happened, i.e. whether the
// file now holds s even though err may be set.
func writeAtomic(path string, s *Snapshot) (replaced bool, err error) {
	b, err := encode(s)
	if err != nil {
		return false, err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return false, fmt.Errorf("creating temporary file: %w", err)
	}
	defer func() {
		if !replaced {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return false, fmt.Errorf("writing temporary file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("syncing temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("closing temporary file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("replacing file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("syncing directory %q: %w", dir, err)
	}
	return true, nil
}

// removeTemps deletes the temporary files an interrupted write left next to
// the state file at path and returns their names.
func removeTemps(path string) ([]string, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing directory for temporary files: %w", err)
	}
	prefix := tempPrefix(path)
	var removed []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("removing temporary file: %w", err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}
