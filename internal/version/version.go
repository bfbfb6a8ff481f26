// Package version reports which build of meridian is running: the release
// version stamped in at link time, the Go toolchain and the VCS revision
// recorded by the go command.
//
// It owns only these read-only facts. It must not import other meridian
// packages, read the environment or do I/O beyond debug.ReadBuildInfo.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is the release version, set at link time with
//
//	-ldflags "-X github.com/meridian-edge/meridian/internal/version.Version=v1.2.3"
//
// and "dev" in builds that do not set it.
var Version = "dev"

// Build describes the running binary.
type Build struct {
	Version   string // release version, see [Version]
	GoVersion string // Go toolchain that built the binary
	Revision  string // VCS revision, empty when unknown
	Time      string // VCS commit time (RFC 3339), empty when unknown
	Modified  bool   // the working tree had uncommitted changes
}

// Get returns the build facts of the running binary.
func Get() Build {
	return fromBuildInfo(debug.ReadBuildInfo())
}

// fromBuildInfo fills a Build from build info as debug.ReadBuildInfo returns it.
func fromBuildInfo(bi *debug.BuildInfo, ok bool) Build {
	b := Build{Version: Version, GoVersion: runtime.Version()}
	if !ok || bi == nil {
		return b
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String renders the build on one line, for example
// "meridian v1.2.3 (go1.26.0, rev 0123abcd4567, 2026-01-02T03:04:05Z, modified)".
func (b Build) String() string {
	parts := []string{b.GoVersion}
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "rev "+rev)
	}
	if b.Time != "" {
		parts = append(parts, b.Time)
	}
	if b.Modified {
		parts = append(parts, "modified")
	}
	return fmt.Sprintf("meridian %s (%s)", b.Version, strings.Join(parts, ", "))
}

// Info returns the one-line description of the running binary: the version,
// the Go toolchain and, when the go command recorded them, the VCS revision,
// commit time and whether the tree was modified.
func Info() string {
	return Get().String()
}
