package main

import (
	"log/slog"
	"os"

	"github.com/meridian-edge/meridian/internal/sdnotify"
)

// systemdNotifier returns the notifier for NOTIFY_SOCKET, set when systemd
// starts meridian with Type=notify; nil otherwise. The variable is unset
// so that processes meridian might start do not notify in its name.
func systemdNotifier(log *slog.Logger) *sdnotify.Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	_ = os.Unsetenv("NOTIFY_SOCKET")
	sd, err := sdnotify.New(path)
	if err != nil {
		log.Warn("not notifying systemd", "err", err)
		return nil
	}
	return sd
}

// notify sends one state change to systemd; a failure is logged, never
// fatal: the node serves the same either way.
func notify(log *slog.Logger, send func() error) {
	if err := send(); err != nil {
		log.Warn("notifying systemd", "err", err)
	}
}
