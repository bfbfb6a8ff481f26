package certs

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestZapLoggerWritesThroughSlog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "certs")
	zl := zapLogger(log).Named("obtain").With(zap.String("identifier", "api.example.com"))

	zl.Debug("hidden below info")
	zl.Info("certificate obtained", zap.Int("attempt", 2), zap.Strings("names", []string{"a", "b"}))
	zl.Warn("renewal window")
	zl.Error("could not get certificate", zap.Error(errors.New("boom")))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d records, want 3 (debug suppressed):\n%s", len(lines), buf.String())
	}
	tests := []struct {
		name  string
		line  int
		level string
		msg   string
		attrs map[string]any
	}{
		{"info with fields", 0, "INFO", "certificate obtained", map[string]any{
			"component": "certs", "logger": "obtain", "identifier": "api.example.com",
			"attempt": float64(2), "names": []any{"a", "b"},
		}},
		{"warn", 1, "WARN", "renewal window", map[string]any{"identifier": "api.example.com"}},
		{"error", 2, "ERROR", "could not get certificate", map[string]any{"error": "boom"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[tc.line]), &rec); err != nil {
				t.Fatalf("record %q: %v", lines[tc.line], err)
			}
			if rec["level"] != tc.level || rec["msg"] != tc.msg {
				t.Errorf("level %v msg %v, want %s %q", rec["level"], rec["msg"], tc.level, tc.msg)
			}
			for k, want := range tc.attrs {
				got, _ := json.Marshal(rec[k])
				w, _ := json.Marshal(want)
				if !bytes.Equal(got, w) {
					t.Errorf("attribute %s = %s, want %s", k, got, w)
				}
			}
		})
	}
}
