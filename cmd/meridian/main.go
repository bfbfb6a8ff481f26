// Command meridian is a global traffic-steering edge node: an
// authoritative DNS server and an HTTP(S) reverse proxy that send every
// client to the best healthy region, with an admin API and its client.
//
// This is the only place that reads flags and the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/internal/sdnotify"
	"github.com/meridian-edge/meridian/internal/version"
	"github.com/meridian-edge/meridian/node"
)

const usage = `usage: meridian COMMAND [flags]

commands:
  run --config FILE        run an edge node until SIGTERM/SIGINT (SIGHUP reloads)
  validate --config FILE   check a config; prints FILE:LINE: message for every error
  demo                     run a node on loopback with three simulated regions
  ctl SUBCOMMAND           admin API client (meridian ctl -h)
  version                  version and build info
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "ctl":
		return cmdCtl(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.Info())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "meridian: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseFlags parses args into fs. -h and --help print summary and the
// flags to stdout: done is true and code 0. A bad flag is reported on
// stderr: done is true and code 2.
func parseFlags(fs *flag.FlagSet, args []string, summary string, stdout, stderr io.Writer) (done bool, code int) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return false, 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, summary)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return true, 0
	}
	fmt.Fprintf(stderr, "meridian %s: %v\n", fs.Name(), err)
	fs.SetOutput(stderr)
	fs.PrintDefaults()
	return true, 2
}

const validateUsage = `usage: meridian validate --config FILE

Checks a config as run would load it: every error is printed as
FILE:LINE: message, and the exit status is 1; a good config prints
"FILE: ok" and exits 0.

flags:
`

const runUsage = `usage: meridian run --config FILE [--log-level LEVEL] [--log-format FORMAT]

Runs an edge node until SIGTERM or SIGINT. SIGHUP reloads the config (a bad
one is refused and the old one keeps serving). On SIGTERM/SIGINT readiness
turns 503 at once, the node serves on for node.drain, then lets in-flight
requests finish for up to node.shutdown_timeout.

flags:
`

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("config", "", "config file")
	if done, code := parseFlags(fs, args, validateUsage, stdout, stderr); done {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "meridian validate: --config FILE is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// What run opens besides the file: the GeoIP database, the state.
	if err := node.Check(cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "", "config file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "", "text or json (default: text on a terminal, json otherwise)")
	if done, code := parseFlags(fs, args, runUsage, stdout, stderr); done {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "meridian run: --config FILE is required")
		return 2
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "meridian run:", err)
		return 2
	}
	if _, err := os.Stat(*path); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "meridian run: no config at %s: write or mount one there "+
			"(configs/first-node.yaml is a loopback-only one to start from; configs/example.yaml documents every key)\n", *path)
		return 1
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	n, err := node.New(cfg, node.Options{Logger: log, ConfigPath: *path, Admin: adminHandler(log)})
	if err != nil {
		log.Error("preparing node", "err", err)
		return 1
	}
	return serve(n, log, systemdNotifier(log))
}

// serve starts n and runs it until SIGTERM or SIGINT; SIGHUP reloads.
// sd (nil: none) tells systemd when the node is ready, reloading and
// stopping.
func serve(n *node.Node, log *slog.Logger, sd *sdnotify.Notifier) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Signals are caught before the node starts: once it answers on its
	// listeners, a SIGHUP must reload it, never end the process.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	if err := n.Start(ctx); err != nil {
		log.Error("starting node", "err", err)
		return 1
	}
	notify(log, sd.Ready)
	for s := range sig {
		if s == syscall.SIGHUP {
			notify(log, sd.Reloading)
			if err := n.Reload(node.Actor{Token: "signal", Reason: "SIGHUP"}); err != nil {
				log.Error("reload refused", "err", err)
			}
			notify(log, sd.Ready)
			continue
		}
		notify(log, sd.Stopping)
		log.Info("shutting down", "signal", s.String())
		done := make(chan error, 1)
		go func() { done <- n.Shutdown(ctx) }()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Error("shutdown", "err", err)
				return 1
			}
			return 0
		case s2 := <-sig:
			if s2 != syscall.SIGHUP {
				log.Warn("second signal; stopping now", "signal", s2.String())
				cancel()
				_ = n.Close()
				return 1
			}
		}
	}
	return 0
}

// waitTimeout is how long ctl waits for a node to answer.
const waitTimeout = 10 * time.Second
