package config

import (
	"strconv"
	"strings"
)

// positions remembers where each key and list item of the file was, by
// path ("regions[0].health.interval"), and which values failed to decode.
// A Config built in code has empty positions: every line is 0 and every
// key counts as unset when its value is zero.
type positions struct {
	lines  map[string]int
	failed map[string]bool
}

func newPositions() *positions {
	return &positions{lines: map[string]int{}, failed: map[string]bool{}}
}

// set reports whether the file gave path a value that decoded.
func (p *positions) set(path string) bool {
	_, ok := p.lines[path]
	return ok && !p.failed[path]
}

// line returns the line of path, or of its nearest ancestor the file has;
// 0 when none is known.
func (p *positions) line(path string) int {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// suppressed reports whether path or anything below it failed to decode:
// checks on such values would only repeat the decoding error.
func (p *positions) suppressed(path string) bool {
	for f := range p.failed {
		if f == path || strings.HasPrefix(f, path+".") || strings.HasPrefix(f, path+"[") {
			return true
		}
	}
	return false
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func itemPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// where names path in messages; the document root has no path.
func where(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}
