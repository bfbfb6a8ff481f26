package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNewLoggerFormats(t *testing.T) {
	tests := []struct {
		name, format string
		check        func(t *testing.T, out string)
	}{
		{"default off a terminal is json", "", func(t *testing.T, out string) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(out), &rec); err != nil {
				t.Fatalf("not JSON: %q: %v", out, err)
			}
			if rec["msg"] != "draining" || rec["component"] != "node" || rec["drain"] != "1.5s" || rec["level"] != "INFO" {
				t.Errorf("got %v, want msg draining, component node, drain \"1.5s\", level INFO", rec)
			}
		}},
		{"json", "json", func(t *testing.T, out string) {
			if !strings.Contains(out, `"drain":"1.5s"`) {
				t.Errorf("got %q, want drain as a string", out)
			}
		}},
		{"text", "text", func(t *testing.T, out string) {
			if !strings.Contains(out, "msg=draining") || !strings.Contains(out, "drain=1.5s") {
				t.Errorf("got %q, want a text line with drain=1.5s", out)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := newLogger(&buf, "info", tc.format)
			if err != nil {
				t.Fatal(err)
			}
			log.With("component", "node").Info("draining", "drain", 1500*time.Millisecond)
			log.Debug("hidden at info")
			if strings.Contains(buf.String(), "hidden") {
				t.Errorf("debug line logged at info: %q", buf.String())
			}
			tc.check(t, buf.String())
		})
	}
}

func TestNewLoggerErrors(t *testing.T) {
	if _, err := newLogger(os.Stderr, "info", "xml"); err == nil || err.Error() != `bad --log-format "xml": want text or json` {
		t.Errorf("bad format: got %v", err)
	}
	if _, err := newLogger(os.Stderr, "loud", "json"); err == nil || err.Error() != `bad --log-level "loud"` {
		t.Errorf("bad level: got %v", err)
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe is not a terminal")
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file is not a terminal")
	}
}
