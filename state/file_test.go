package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func fixedNow() time.Time { return t0.Add(time.Hour) }

func openT(t *testing.T, path string, opts FileOptions) *File {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	f, err := OpenFile(path, opts)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func loadT(t *testing.T, s Store) Snapshot {
	t.Helper()
	snap, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return snap
}

func readT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// temps lists the temporary files next to path.
func temps(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// setFull is an Update function storing fullSnapshot's dials, overrides and
// shifts.
func setFull(s *Snapshot) error {
	full := fullSnapshot()
	s.Dials, s.Overrides, s.Shifts = full.Dials, full.Overrides, full.Shifts
	return nil
}

func TestFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := openT(t, path, FileOptions{})
	if got := loadT(t, f); !reflect.DeepEqual(got, Empty()) {
		t.Fatalf("missing file: got %+v, want the empty state", got)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening created the file (stat: %v)", err)
	}

	stamped := t0.Add(-time.Hour)
	got, err := f.Update(setFull,
		AuditEntry{Token: "ops", Action: "dial", Target: "api/eu-west", Old: "100", New: "10", Reason: "drain"},
		AuditEntry{Time: stamped, Token: "ops", Action: "override", Target: "region us-east", Old: "auto", New: "down"},
	)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := fullSnapshot()
	want.Generation = 1
	want.Audit = []AuditEntry{
		{Seq: 1, Time: fixedNow(), Token: "ops", Action: "dial", Target: "api/eu-west", Old: "100", New: "10", Reason: "drain"},
		{Seq: 2, Time: stamped, Token: "ops", Action: "override", Target: "region us-east", Old: "auto", New: "down"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Update returned\n %+v\nwant %+v", got, want)
	}
	if l := loadT(t, f); !reflect.DeepEqual(l, want) {
		t.Fatalf("Load after Update:\n got %+v\nwant %+v", l, want)
	}
	if !bytes.Contains(readT(t, path), []byte(`"hold": "5m0s"`)) {
		t.Errorf("file does not hold the hold as a duration string:\n%s", readT(t, path))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode: got %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	g := openT(t, path, FileOptions{})
	if l := loadT(t, g); !reflect.DeepEqual(l, want) {
		t.Fatalf("Load after reopen:\n got %+v\nwant %+v", l, want)
	}
	next, err := g.Update(func(*Snapshot) error { return nil }, AuditEntry{Action: "reload"})
	if err != nil {
		t.Fatal(err)
	}
	if next.Generation != 2 || next.Audit[len(next.Audit)-1].Seq != 3 {
		t.Errorf("after reopen: got generation %d and last seq %d, want 2 and 3", next.Generation, next.Audit[len(next.Audit)-1].Seq)
	}
}

func TestFileLoadIsACopy(t *testing.T) {
	f := openT(t, filepath.Join(t.TempDir(), "state.json"), FileOptions{})
	ret, err := f.Update(setFull)
	if err != nil {
		t.Fatal(err)
	}
	l := loadT(t, f)
	for _, s := range []Snapshot{ret, l} {
		s.Dials["api"]["us-east"] = 3
		s.Overrides["x"] = OverrideUp
		s.Shifts[0].Steps[0] = 3
	}
	if again := loadT(t, f); !reflect.DeepEqual(again.Dials, fullSnapshot().Dials) ||
		!reflect.DeepEqual(again.Overrides, fullSnapshot().Overrides) ||
		!reflect.DeepEqual(again.Shifts, fullSnapshot().Shifts) {
		t.Fatalf("editing returned snapshots changed the store: %+v", again)
	}
}

func TestOpenFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{name: "newer version", content: `{"version": 2, "dials": {"api": 7}}`, wantErr: "format version 2 is newer than this build reads (1)"},
		{name: "no version", content: `{"dials": {}}`, wantErr: "no format version"},
		{name: "version zero", content: `{"version": 0}`, wantErr: "unknown format version 0"},
		{name: "truncated", content: "{\n  \"version\": 1,\n  \"dials\": {", wantErr: "parsing: line 3, column 12: unexpected end of JSON input"},
		{name: "garbage", content: "{\n  \"version\": 1,\n  x\n}", wantErr: "parsing: line 3, column 3: invalid character 'x'"},
		{name: "wrong type", content: "{\"version\": 1,\n\"dials\": []}", wantErr: "parsing: line 2, column 10: json: cannot unmarshal array"},
		{name: "empty", content: " \n", wantErr: "file is empty"},
		{name: "invalid content", content: `{"version": 1, "dials": {"api": {"x": 300}}}`, wantErr: "invalid: dial of api/x: 300 is outside 0..100"},
		{name: "bad duration", content: `{"version": 1, "shifts": [{"hold": "soon"}]}`, wantErr: `parsing: bad duration "soon"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenFile(path, FileOptions{})
			if err == nil {
				t.Fatal("got no error")
			}
			prefix := fmt.Sprintf("reading state file %q: ", path)
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %q, want %q followed by %q", err, prefix, tc.wantErr)
			}
			if got := readT(t, path); string(got) != tc.content {
				t.Errorf("a failed open changed the file: %q", got)
			}
			// The failed open released its lock.
			if err := os.WriteFile(path, []byte(`{"version": 1}`), 0o600); err != nil {
				t.Fatal(err)
			}
			openT(t, path, FileOptions{})
		})
	}
}

func TestOpenFileBadPath(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "empty", path: "", wantErr: "opening state file: empty path"},
		{name: "missing directory", path: filepath.Join(dir, "nope", "state.json"),
			wantErr: fmt.Sprintf("opening state file %q: opening lock file: open %s", filepath.Join(dir, "nope", "state.json"), filepath.Join(dir, "nope", "state.json.lock"))},
		{name: "directory", path: dir, wantErr: fmt.Sprintf("reading state file: read %s: is a directory", dir)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenFile(tc.path, FileOptions{})
			if err == nil {
				_ = f.Close()
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %q, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestUpdateFailureWritesNothing(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(*Snapshot) error
		wantErr string
		wantIs  error
	}{
		{name: "function error", fn: func(s *Snapshot) error {
			s.SetDial("api", "us-east", 1)
			s.Overrides["eu-west"] = OverrideDown
			s.Shifts[0].Steps[0] = 7
			return errBoom
		}, wantErr: "boom", wantIs: errBoom},
		{name: "invalid result", fn: func(s *Snapshot) error {
			s.SetDial("api", "us-east", 150)
			return nil
		}, wantErr: "updating state: invalid result: dial of api/us-east: 150 is outside 0..100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			f := openT(t, path, FileOptions{})
			if _, err := f.Update(setFull, AuditEntry{Action: "dial"}); err != nil {
				t.Fatal(err)
			}
			before, beforeSnap := readT(t, path), loadT(t, f)

			_, err := f.Update(tc.fn, AuditEntry{Action: "dial", New: "1"})
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			if after := readT(t, path); !bytes.Equal(after, before) {
				t.Errorf("file changed:\nbefore %s\nafter  %s", before, after)
			}
			if after := loadT(t, f); !reflect.DeepEqual(after, beforeSnap) {
				t.Errorf("state changed:\nbefore %+v\nafter  %+v", beforeSnap, after)
			}
			if left := temps(t, path); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestUpdateWriteFailureKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := openT(t, path, FileOptions{})
	if _, err := f.Update(setFull); err != nil {
		t.Fatal(err)
	}
	before := loadT(t, f)
	// A non-empty directory where the file was makes the rename fail.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := f.Update(func(s *Snapshot) error { s.SetDial("api", "us-east", 1); return nil })
	want := fmt.Sprintf("writing state file %q: replacing file: rename ", path)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got error %v, want one starting %q", err, want)
	}
	if after := loadT(t, f); !reflect.DeepEqual(after, before) {
		t.Errorf("state changed by a failed write:\nbefore %+v\nafter  %+v", before, after)
	}
	if left := temps(t, path); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestUpdateOwnsVersionGenerationAudit(t *testing.T) {
	f := openT(t, filepath.Join(t.TempDir(), "state.json"), FileOptions{})
	if _, err := f.Update(setFull, AuditEntry{Action: "dial"}); err != nil {
		t.Fatal(err)
	}
	got, err := f.Update(func(s *Snapshot) error {
		s.Version, s.Generation, s.Audit = 9, 100, nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.Generation != 2 || len(got.Audit) != 1 || got.Audit[0].Seq != 1 {
		t.Errorf("got version %d, generation %d, audit %+v; want 1, 2 and the one entry", got.Version, got.Generation, got.Audit)
	}
}

func seqs(a []AuditEntry) []uint64 {
	out := make([]uint64, len(a))
	for i, e := range a {
		out[i] = e.Seq
	}
	return out
}

func TestAuditCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := openT(t, path, FileOptions{AuditCap: 5})
	nop := func(*Snapshot) error { return nil }
	for i := range 12 {
		if _, err := f.Update(nop, AuditEntry{Action: "dial", New: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := seqs(loadT(t, f).Audit), []uint64{8, 9, 10, 11, 12}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after 12 single entries: got seqs %v, want %v", got, want)
	}
	batch := make([]AuditEntry, 7)
	got, err := f.Update(nop, batch...)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(got.Audit), []uint64{15, 16, 17, 18, 19}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after a batch larger than the cap: got seqs %v, want %v", got, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g := openT(t, path, FileOptions{AuditCap: 3})
	if got, want := seqs(loadT(t, g).Audit), []uint64{17, 18, 19}; !reflect.DeepEqual(got, want) {
		t.Fatalf("reopened with a smaller cap: got seqs %v, want %v", got, want)
	}
	got, err = g.Update(nop, AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(got.Audit), []uint64{18, 19, 20}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: got seqs %v, want %v", got, want)
	}
}

func TestAuditDefaultCap(t *testing.T) {
	f := openT(t, filepath.Join(t.TempDir(), "state.json"), FileOptions{})
	got, err := f.Update(func(*Snapshot) error { return nil }, make([]AuditEntry, DefaultAuditCap+1)...)
	if err != nil {
		t.Fatal(err)
	}
	if n, first := len(got.Audit), got.Audit[0].Seq; n != DefaultAuditCap || first != 2 {
		t.Errorf("got %d entries from seq %d, want %d from seq 2", n, first, DefaultAuditCap)
	}
}

// TestConcurrentUpdates runs Updates and Loads from many goroutines. Every
// Update raises one dial by one, so in every consistent snapshot the dials
// add up to the generation.
func TestConcurrentUpdates(t *testing.T) {
	const writers, perWriter = 8, 25
	path := filepath.Join(t.TempDir(), "state.json")
	f := openT(t, path, FileOptions{Now: time.Now})
	sum := func(s Snapshot) uint64 {
		var n uint64
		for _, d := range s.Dials["svc"] {
			n += uint64(d)
		}
		return n
	}

	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := f.Load()
			if err != nil {
				errs <- err
				return
			}
			if got := sum(s); got != s.Generation || s.Generation < last || uint64(len(s.Audit)) != s.Generation {
				errs <- fmt.Errorf("inconsistent snapshot: generation %d (previous %d), dial sum %d, %d audit entries", s.Generation, last, got, len(s.Audit))
				return
			}
			last = s.Generation
		}
	}()
	var writersWG sync.WaitGroup
	for w := range writers {
		region := fmt.Sprintf("r%d", w)
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for range perWriter {
				_, err := f.Update(func(s *Snapshot) error {
					d, _ := s.Dial("svc", region)
					s.SetDial("svc", region, d+1)
					return nil
				}, AuditEntry{Action: "dial", Target: "svc/" + region})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	writersWG.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	final := loadT(t, f)
	if final.Generation != writers*perWriter {
		t.Errorf("got generation %d, want %d", final.Generation, writers*perWriter)
	}
	for w := range writers {
		if d, _ := final.Dial("svc", fmt.Sprintf("r%d", w)); d != perWriter {
			t.Errorf("r%d: got dial %d, want %d", w, d, perWriter)
		}
	}
	for i, e := range final.Audit {
		if e.Seq != uint64(i+1) {
			t.Fatalf("audit entry %d: got seq %d, want %d", i, e.Seq, i+1)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if reopened := loadT(t, openT(t, path, FileOptions{})); !reflect.DeepEqual(reopened, final) {
		t.Errorf("reopened state differs from the last in memory")
	}
}
