package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	File string // the path as given to Load or Parse; "" when unknown
	Line int    // 1-based; 0 when the problem has no position
	Msg  string
}

// Error formats e as FILE:LINE: message.
func (e Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	default:
		return e.Msg
	}
}

// Errors is every problem found in a configuration, in file and line
// order. Load, Parse and Validate return it (as error) when anything is
// wrong.
type Errors struct {
	Errs []Error
}

// Error joins the individual errors, one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// errorList collects errors for one file.
type errorList struct {
	file string
	errs []Error
}

func (l *errorList) add(line int, format string, args ...any) {
	l.errs = append(l.errs, Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (l *errorList) addIn(file string, line int, format string, args ...any) {
	l.errs = append(l.errs, Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// err returns the collected errors as *Errors, or nil when there are none.
// Errors are sorted by file (the config file first) and line; errors on the
// same line keep the order they were found in.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	errs := append([]Error(nil), l.errs...)
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.File != b.File {
			if a.File == l.file || b.File == l.file {
				return a.File == l.file
			}
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return &Errors{Errs: errs}
}
