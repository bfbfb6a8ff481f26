// Package sdnotify tells systemd about the service's state over the
// NOTIFY_SOCKET datagram protocol (sd_notify(3)): ready, reloading,
// stopping. It speaks the plain protocol with the standard library and
// reads no environment itself: the caller passes the socket's path.
package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Notifier sends state changes to one notification socket. A nil
// *Notifier, or one made for an empty path, sends nothing: the process was
// not started by systemd with Type=notify.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a Notifier for the socket at path, the value of
// NOTIFY_SOCKET: a file system path or, starting with "@", a Linux
// abstract socket. An empty path gives a Notifier that sends nothing.
func New(path string) (*Notifier, error) {
	if path == "" {
		return &Notifier{}, nil
	}
	if !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@") {
		return nil, fmt.Errorf("notify socket %q is neither an absolute path nor an abstract socket", path)
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// Enabled reports whether notifications are sent anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Ready says start-up is finished, or a reload is.
func (n *Notifier) Ready() error { return n.send("READY=1") }

// Reloading says a configuration reload begins; Ready must follow when
// it ends, whether or not the new configuration was taken.
func (n *Notifier) Reloading() error {
	msg := "RELOADING=1"
	if us, ok := monotonicUsec(); ok {
		msg += "\nMONOTONIC_USEC=" + strconv.FormatUint(us, 10)
	}
	return n.send(msg)
}

// Stopping says the service is shutting down.
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// Status sets the free-form status line systemctl status shows.
func (n *Notifier) Status(text string) error {
	return n.send("STATUS=" + strings.ReplaceAll(text, "\n", " "))
}

// send writes one datagram of newline-separated assignments.
func (n *Notifier) send(msg string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notifying systemd: %w", err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return fmt.Errorf("notifying systemd: %w", err)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("notifying systemd: %w", err)
	}
	return nil
}
