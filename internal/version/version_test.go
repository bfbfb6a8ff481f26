package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want Build
	}{
		{
			name: "no build info",
			bi:   nil,
			ok:   false,
			want: Build{Version: "dev", GoVersion: runtime.Version()},
		},
		{
			name: "no vcs settings",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.0"},
			ok:   true,
			want: Build{Version: "dev", GoVersion: "go1.26.0"},
		},
		{
			name: "clean checkout",
			bi: &debug.BuildInfo{GoVersion: "go1.26.1", Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
				{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
				{Key: "vcs.modified", Value: "false"},
			}},
			ok: true,
			want: Build{
				Version:   "dev",
				GoVersion: "go1.26.1",
				Revision:  "0123456789abcdef0123456789abcdef01234567",
				Time:      "2026-01-02T03:04:05Z",
			},
		},
		{
			name: "modified tree",
			bi: &debug.BuildInfo{GoVersion: "go1.26.1", Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc"},
				{Key: "vcs.modified", Value: "true"},
			}},
			ok:   true,
			want: Build{Version: "dev", GoVersion: "go1.26.1", Revision: "abc", Modified: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fromBuildInfo(tt.bi, tt.ok); got != tt.want {
				t.Errorf("fromBuildInfo() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildString(t *testing.T) {
	tests := []struct {
		name string
		b    Build
		want string
	}{
		{
			name: "version and toolchain only",
			b:    Build{Version: "dev", GoVersion: "go1.26.0"},
			want: "meridian dev (go1.26.0)",
		},
		{
			name: "long revision is shortened",
			b: Build{
				Version:   "v1.2.3",
				GoVersion: "go1.26.0",
				Revision:  "0123456789abcdef0123456789abcdef01234567",
				Time:      "2026-01-02T03:04:05Z",
				Modified:  true,
			},
			want: "meridian v1.2.3 (go1.26.0, rev 0123456789ab, 2026-01-02T03:04:05Z, modified)",
		},
		{
			name: "short revision kept whole",
			b:    Build{Version: "v1.0.0", GoVersion: "go1.26.0", Revision: "abc"},
			want: "meridian v1.0.0 (go1.26.0, rev abc)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInfoUsesVersionVar(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.9.9-test"
	got := Info()
	if !strings.HasPrefix(got, "meridian v9.9.9-test (") {
		t.Errorf("Info() = %q, want prefix %q", got, "meridian v9.9.9-test (")
	}
	if !strings.Contains(got, "go1.") {
		t.Errorf("Info() = %q, want it to name the Go toolchain", got)
	}
}
