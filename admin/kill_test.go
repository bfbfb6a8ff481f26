package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// childEnv, when set to a config path, makes the test binary run a node
// with the admin API on that config instead of the tests (see TestMain).
const childEnv = "MERIDIAN_ADMIN_TEST_NODE"

// runChild runs a node until SIGTERM; it prints "admin ADDR" once the admin
// API listens.
func runChild(path string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n, err := node.New(cfg, node.Options{Logger: log, ConfigPath: path, Admin: handlerFor(log)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	if err := n.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("admin %s\n", n.Addr("admin"))
	<-sig
	_ = n.Close()
	return 0
}

// TestKillDuringChanges kills a node (SIGKILL) in the middle of a burst of
// dial changes: the state file must still parse and hold either the last
// acknowledged dial or the one whose answer never came.
func TestKillDuringChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second process")
	}
	e := newEnv(t)
	e.stop() // the files are what matter; the child serves them

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+e.cfgPath)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{}) // closed once the child has exited
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait() // killed: the exit status says only that
		close(waited)
	}()
	var addr string
	select {
	case line, ok := <-lines:
		var found bool
		addr, found = strings.CutPrefix(line, "admin ")
		if !ok || !found {
			t.Fatalf("child node did not report its admin address (got %q)", line)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("child node did not start in 15s")
	}
	e.base = "http://" + addr

	const burst, killAt = 200, 60
	type result struct {
		lastAcked, inFlight int // -1: none
		acked               int
	}
	reached := make(chan struct{})
	done := make(chan result, 1)
	go func() {
		res := result{lastAcked: -1, inFlight: -1}
		for i := 1; i <= burst; i++ {
			d := i % 101
			if err := patchDial(e.hc, e.base, d); err != nil {
				res.inFlight = d
				break
			}
			res.lastAcked, res.acked = d, res.acked+1
			if res.acked == killAt {
				close(reached)
			}
		}
		done <- res
	}()
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the burst did not reach the kill point in 30s")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the burst did not end after the kill")
	}
	t.Logf("acknowledged %d changes, last %d, in flight %d", res.acked, res.lastAcked, res.inFlight)
	if res.acked >= burst {
		t.Fatal("every change was acknowledged; the kill came too late to test anything")
	}

	data, err := os.ReadFile(e.statePath)
	if err != nil {
		t.Fatal(err)
	}
	var snap state.Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		t.Fatalf("state file after SIGKILL is not JSON: %v\n%s", err, data)
	}
	got, ok := snap.Dials["api"]["r1"]
	if !ok || (got != res.lastAcked && got != res.inFlight) {
		t.Fatalf("state file dial = %d (present %v), want the last acknowledged %d or the in-flight %d",
			got, ok, res.lastAcked, res.inFlight)
	}

	// A node started on the same files serves that dial.
	<-waited
	e.start()
	if d := dialOf(e.service("api"), "r1"); d != got {
		t.Errorf("restarted node dial = %d, want %d", d, got)
	}
}

func patchDial(hc *http.Client, base string, d int) error {
	body := fmt.Sprintf(`{"dials": {"r1": %d}, "reason": "burst"}`, d)
	req, err := http.NewRequest(http.MethodPatch, base+"/v1/services/api/dials", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+writeSecret)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
