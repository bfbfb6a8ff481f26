package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitKeys parses a systemd unit into section → key → values (a key may
// repeat).
func unitKeys(t *testing.T, text string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("meridian.service: cannot parse %q", line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// TestSystemdUnit checks what the unit must say, then has systemd-analyze
// verify a copy whose ExecStart points at an executable that exists here.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/meridian.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := unitKeys(t, string(b))
	svc := keys["Service"]
	for k, want := range map[string]string{
		"Type":                "notify",
		"ExecStart":           "/usr/bin/meridian run --config /etc/meridian/meridian.yaml",
		"ExecReload":          "/bin/kill -HUP $MAINPID",
		"AmbientCapabilities": "CAP_NET_BIND_SERVICE",
		"DynamicUser":         "yes",
		"ProtectSystem":       "strict",
		"StateDirectory":      "meridian",
		"NoNewPrivileges":     "yes",
	} {
		if got := svc[k]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s=%q, want %q", k, got, want)
		}
	}
	if got := keys["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q, want multi-user.target", got)
	}

	analyze := tool(t, "systemd-analyze")
	// Any executable will do for verify: this test binary.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "meridian.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/bin/meridian", exe)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	// verify exits 0 on unknown keys and other warnings: any output fails.
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
