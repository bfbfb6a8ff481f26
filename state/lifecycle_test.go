package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOpenRemovesTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f := openT(t, path, FileOptions{})
	want, err := f.Update(setFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	leftovers := []string{".state.json.tmp-123", ".state.json.tmp-"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(`{"version": 1, "generation": 99, "dia`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unrelated := filepath.Join(dir, ".other.json.tmp-1")
	if err := os.WriteFile(unrelated, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	g := openT(t, path, FileOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got := loadT(t, g); !reflect.DeepEqual(got, want) {
		t.Errorf("state after cleanup:\n got %+v\nwant %+v", got, want)
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: still there (stat: %v)", name, err)
		}
		if !strings.Contains(logs.String(), "removed temporary state file") || !strings.Contains(logs.String(), name) {
			t.Errorf("no warning naming %s in logs:\n%s", name, logs.String())
		}
	}
	if _, err := os.Stat(unrelated); err != nil {
		t.Errorf("a file of another state was removed: %v", err)
	}
}

func TestOpenFileLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := openT(t, path, FileOptions{})
	_, err := OpenFile(path, FileOptions{})
	want := fmt.Sprintf("opening state file %q: in use by another process (lock %q is held)", path, path+".lock")
	if err == nil || err.Error() != want {
		t.Fatalf("second open: got error %v, want %q", err, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// A clean stop leaves no lock file behind.
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after Close: stat %v, want it gone", err)
	}
	openT(t, path, FileOptions{})
}

func TestFileClosed(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "state.json"), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if _, err := f.Load(); err == nil || err.Error() != "loading state: state store closed" {
		t.Errorf("Load after Close: got %v", err)
	}
	_, err = f.Update(func(*Snapshot) error { t.Error("fn ran after Close"); return nil })
	if err == nil || err.Error() != "updating state: state store closed" {
		t.Errorf("Update after Close: got %v", err)
	}
	if _, ok := <-f.Watch(context.Background()); ok {
		t.Error("Watch after Close delivered a snapshot")
	}
}

func TestFileWatchCloses(t *testing.T) {
	waitClosed := func(t *testing.T, ch <-chan Snapshot) {
		t.Helper()
		select {
		case s, ok := <-ch:
			if ok {
				t.Fatalf("got snapshot %+v, want a closed channel", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("channel not closed within 5s")
		}
	}
	f := openT(t, filepath.Join(t.TempDir(), "state.json"), FileOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	ch := f.Watch(ctx)
	if _, err := f.Update(setFull); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-ch:
		t.Fatalf("own change echoed: %+v", s)
	default:
	}
	cancel()
	waitClosed(t, ch)

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	waitClosed(t, f.Watch(done))

	open := f.Watch(context.Background())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, open)
}
