package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// newLogger returns the process logger writing to w at level. format is
// "text", "json", or "" for text when w is a terminal and JSON otherwise
// (a file, a pipe, journald). Durations print as Go duration strings
// ("1.5s") in both formats.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: durationString})), nil
	}
	return nil, fmt.Errorf("bad --log-format %q: want text or json", format)
}

// durationString renders a duration attribute as its string ("250ms"),
// not slog's JSON default of integer nanoseconds.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
