//go:build unix

package state

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// crashEnv names the state file the helper process writes; unset, the
// helper test does nothing.
const crashEnv = "MERIDIAN_STATE_CRASH_FILE"

// crashBurst bounds the Updates one helper process makes.
const crashBurst = 2000

// crashDial is the dial the helper stores at generation g, so that a
// snapshot's content can be checked against its generation.
func crashDial(g uint64) int { return int(g % 101) }

// TestHelperProcess is the child of TestCrashSafety: it makes crashBurst
// Updates and prints each acknowledged generation on its own line.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	f, err := OpenFile(path, FileOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range crashBurst {
		snap, err := f.Update(func(s *Snapshot) error {
			s.SetDial("api", "us-east", crashDial(s.Generation+1))
			return nil
		}, AuditEntry{Token: "ops", Action: "dial", Target: "api/us-east", New: strconv.Itoa(i), Reason: "crash test burst"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(snap.Generation) // unbuffered: one write per acknowledgement
	}
	os.Exit(0)
}

// TestCrashSafety kills a process with SIGKILL in the middle of a burst of
// Updates and checks that the file it leaves parses and holds either the
// last acknowledged change or the one in flight, never a torn document.
// Some rounds kill right after an acknowledgement, others on a timer, which
// lands at any point of a write (the log line counts the temporary files a
// kill left behind).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	rounds := []struct {
		afterAcks int           // kill once this many acknowledgements are read
		afterTime time.Duration // or this long after the start
	}{
		{afterAcks: 1},
		{afterTime: 300 * time.Millisecond},
		{afterAcks: 40},
		{afterTime: 900 * time.Millisecond},
		{afterAcks: 300},
	}
	path := filepath.Join(t.TempDir(), "state.json")
	var acked uint64 // last generation acknowledged, across rounds
	for _, r := range rounds {
		name := fmt.Sprintf("kill after %d acks", r.afterAcks)
		if r.afterTime > 0 {
			name = fmt.Sprintf("kill after %s", r.afterTime)
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnv+"="+path)
			var stderr bytes.Buffer // read only after Wait
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			kill := func() { _ = cmd.Process.Kill() } // fails only once the child is gone
			if r.afterTime > 0 {
				timer := time.AfterFunc(r.afterTime, kill)
				defer timer.Stop()
			}
			acks := 0
			sc := bufio.NewScanner(out)
			for sc.Scan() { // drains what the child wrote before it died
				g, err := strconv.ParseUint(sc.Text(), 10, 64)
				if err != nil {
					t.Errorf("child wrote %q, want a generation", sc.Text())
					continue
				}
				if g != acked+1 {
					t.Errorf("child acknowledged generation %d after %d", g, acked)
				}
				acked = g
				if acks++; acks == r.afterAcks {
					kill()
				}
			}
			waitErr := cmd.Wait()
			if ctx.Err() != nil {
				t.Fatal("child ran past the deadline")
			}
			finished := waitErr == nil // the burst outran the kill
			if !finished && !isKilled(waitErr) {
				t.Fatalf("child failed after %d acknowledgements: %v; stderr: %s", acks, waitErr, stderr.String())
			}

			leftovers := len(temps(t, path))
			f, err := OpenFile(path, FileOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatalf("open after kill: %v", err)
			}
			defer func() { _ = f.Close() }()
			snap := loadT(t, f)
			switch {
			case finished && snap.Generation != acked:
				t.Fatalf("child finished its burst: got generation %d, want %d", snap.Generation, acked)
			case snap.Generation != acked && snap.Generation != acked+1:
				t.Fatalf("got generation %d, want the last acknowledged %d or the one in flight", snap.Generation, acked)
			}
			if d, _ := snap.Dial("api", "us-east"); snap.Generation > 0 && d != crashDial(snap.Generation) {
				t.Errorf("generation %d holds dial %d, want %d", snap.Generation, d, crashDial(snap.Generation))
			}
			if n := len(snap.Audit); uint64(n) != snap.Generation || (n > 0 && snap.Audit[n-1].Seq != snap.Generation) {
				t.Errorf("generation %d holds %d audit entries, want as many ending at that seq", snap.Generation, n)
			}
			if left := temps(t, path); len(left) != 0 {
				t.Errorf("temporary files left after open: %v", left)
			}
			t.Logf("%d acknowledgements read, child finished: %v; file at generation %d; %d temporary files left by the kill",
				acks, finished, snap.Generation, leftovers)
			acked = snap.Generation // the next child continues from what the file holds
		})
	}
}

// isKilled reports whether err is the exit of a process killed by SIGKILL.
func isKilled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
