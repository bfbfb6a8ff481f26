package node

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccessLogRotation: with access_log.path set, proxied requests are
// logged; after the file is moved away, a reload reopens the path; a
// reload naming a path that cannot be opened is refused.
func TestAccessLogRotation(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	tn := startNode(t, "access_log: {path: "+logPath+"}\n")
	get := func() {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+tn.Addr("http/0").String()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "web.example.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	lines := func(path string) []map[string]any {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var out []map[string]any
		for l := range strings.Lines(string(b)) {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: not JSON: %q", path, l)
			}
			out = append(out, m)
		}
		return out
	}
	get()
	waitFor(t, 5*time.Second, "a line in the access log", func() bool { return len(lines(logPath)) == 1 })
	if l := lines(logPath)[0]; l["service"] != "web" || l["region"] != "us-east" || l["status"] != 200.0 {
		t.Errorf("line: %v, want web, us-east, 200", l)
	}

	rotated := filepath.Join(dir, "access.log.1")
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := tn.Reload(Actor{Token: "test", Reason: "rotate"}); err != nil {
		t.Fatal(err)
	}
	get()
	get()
	waitFor(t, 5*time.Second, "two lines in the new file", func() bool { return len(lines(logPath)) == 2 })
	if n := len(lines(rotated)); n != 1 {
		t.Errorf("rotated file: %d lines, want 1", n)
	}

	cfg := mustRead(t, tn.path)
	tn.write(t, strings.Replace(cfg, logPath, filepath.Join(dir, "missing", "access.log"), 1))
	if err := tn.Reload(Actor{Token: "test"}); err == nil || !strings.Contains(err.Error(), "opening access log") {
		t.Errorf("reload with an unwritable access log: got %v, want an opening access log error", err)
	}
	get()
	waitFor(t, 5*time.Second, "the old file kept in use", func() bool { return len(lines(logPath)) == 3 })
}
