package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAccessLogPath(t *testing.T) {
	dir := filepath.Join(string(filepath.Separator), "etc", "meridian")
	file := filepath.Join(dir, "meridian.yaml")
	tests := []struct{ name, yaml, want string }{
		{"off by default", "", ""},
		{"relative to the config's folder", "access_log: {path: logs/access.log}\n", filepath.Join(dir, "logs", "access.log")},
		{"absolute", "access_log: {path: /var/log/meridian/access.log}\n", "/var/log/meridian/access.log"},
		{"standard output", "access_log: {path: \"-\"}\n", AccessLogStdout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(file, []byte(minimal+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if c.AccessLog.Path != tc.want {
				t.Errorf("access_log.path = %q, want %q", c.AccessLog.Path, tc.want)
			}
		})
	}
	_, err := Parse(file, []byte(minimal+"access_log: {file: x}\n"))
	if err == nil || !strings.Contains(err.Error(), "file") {
		t.Errorf("unknown key under access_log: got %v, want an error", err)
	}
}
