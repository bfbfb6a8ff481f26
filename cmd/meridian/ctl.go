package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

const ctlUsage = `usage: meridian ctl [--admin URL] [--token TOKEN] [-o table|json] SUBCOMMAND [ARGS]

subcommands:
  status                                        the node, its regions and their endpoints
  services                                      every service with its regions' dials
  dial SERVICE REGION PERCENT [--reason TEXT]   set a region's traffic dial in a service (0..100)
  override REGION up|down|auto [--reason TEXT]  force a region up or down, or back to its checks (auto)
  explain SERVICE CLIENT_IP                     how a client of a service is steered, step by step
  shift SERVICE REGION STEP[,STEP…] [--hold DUR] [--max-error-ratio R] [--max-p95 DUR]
        [--min-requests N] [--max-wait DUR] [--reason TEXT]
                                                walk a region's dial through steps, each held while a guard
                                                watches the regions gaining traffic; rolls back on a breach
  shifts SERVICE                                a service's shifts, newest first
  abort SERVICE SHIFT_ID [--reason TEXT]        stop a running shift and restore the dial it started from
  failover SERVICE --to REGION [--force] [--accept-data-loss] [--dry-run] [--reason TEXT]
                                                move a service's writes primary and reads to REGION through
                                                the runbook's steps; waits and prints each step, RTO and RPO
  failovers SERVICE                             a service's failovers, newest first
  drill SERVICE REGION [--duration DUR] [--reason TEXT]
                                                force REGION down for DUR (default 2m), wait, print the
                                                measured RTO and the errors meanwhile
  audit [--limit N]                             recent changes, newest first (default 100)
  reload [--reason TEXT]                        reload the node's config file
  drain [--reason TEXT]                         take this node out of service: readiness 503, bgp prefixes
                                                withdrawn at once; it keeps answering; survives a restart
  undrain [--reason TEXT]                       put it back: announced again once ready and self-checked
  nodes                                         the fleet's live nodes: version, readiness, config, regions they see down

flags (before or after the subcommand and its arguments):
  --admin URL            admin API address (default http://127.0.0.1:9053)
  --token TOKEN          bearer token (default $MERIDIAN_TOKEN)
  -o FORMAT              table (default) or json: the API's JSON as it came
  --reason TEXT          why, for the audit log (dial, override, reload, shift, abort, drain, undrain)
  --limit N              audit entries to show (audit)
  --hold DUR             how long each step of a shift holds (shift; default 5m)
  --max-error-ratio R    guard: highest error ratio, 0..1 or a percentage such as 1% (shift)
  --max-p95 DUR          guard: highest p95 latency of proxied requests (shift)
  --min-requests N       guard: requests a step needs before it is judged (shift; default 100)
  --max-wait DUR         guard: longest wait for min-requests (shift; default 4 × hold)
  --to REGION            the failover's target region (failover)
  --force                fail over although the writes primary is up; needs --reason (failover)
  --accept-data-loss     promote although the target's replica lag is over the RPO (failover)
  --dry-run              take steps 1-4 as they stand and say what would happen (failover)
  --duration DUR         how long a drill forces the region down (drill; default 2m)
`

// defaultAdminURL is where ctl looks for a node's admin API.
const defaultAdminURL = "http://127.0.0.1:9053"

// ctlFlags are every flag ctl knows; which apply depends on the subcommand.
type ctlFlags struct {
	admin, token, output, reason string
	limit                        int
	set                          map[string]bool // flags given on the command line

	// shift flags, parsed by the shift subcommand
	hold, maxErrorRatio, maxP95, minRequests, maxWait string

	// failover and drill flags
	to, duration                  string
	force, acceptDataLoss, dryRun bool
}

// ctlCommand is one ctl subcommand.
type ctlCommand struct {
	name  string
	args  []string // positional argument names, for usage
	flags []string // flags beyond the global ones
	run   func(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error
}

// ctlCommands lists the subcommands.
var ctlCommands = []ctlCommand{
	{name: "status", run: ctlStatus},
	{name: "services", run: ctlServices},
	{name: "dial", args: []string{"SERVICE", "REGION", "PERCENT"}, flags: []string{"reason"}, run: ctlDial},
	{name: "override", args: []string{"REGION", "up|down|auto"}, flags: []string{"reason"}, run: ctlOverride},
	{name: "explain", args: []string{"SERVICE", "CLIENT_IP"}, run: ctlExplain},
	{name: "audit", flags: []string{"limit"}, run: ctlAudit},
	{name: "reload", flags: []string{"reason"}, run: ctlReload},
	{name: "shift", args: []string{"SERVICE", "REGION", "STEP[,STEP…]"},
		flags: []string{"hold", "max-error-ratio", "max-p95", "min-requests", "max-wait", "reason"}, run: ctlShift},
	{name: "shifts", args: []string{"SERVICE"}, run: ctlShifts},
	{name: "abort", args: []string{"SERVICE", "SHIFT_ID"}, flags: []string{"reason"}, run: ctlAbort},
	{name: "drain", flags: []string{"reason"}, run: ctlDrain}, // ctl_drain.go
	{name: "undrain", flags: []string{"reason"}, run: ctlUndrain},
	{name: "nodes", run: ctlNodes},
	{name: "failover", args: []string{"SERVICE"},
		flags: []string{"to", "force", "accept-data-loss", "dry-run", "reason"}, run: ctlFailover},
	{name: "failovers", args: []string{"SERVICE"}, run: ctlFailovers},
	{name: "drill", args: []string{"SERVICE", "REGION"}, flags: []string{"duration", "reason"}, run: ctlDrill},
}

// globalCtlFlags apply to every subcommand.
var globalCtlFlags = []string{"admin", "token", "o", "output"}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func newCtlFlagSet(f *ctlFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.admin, "admin", defaultAdminURL, "admin API address")
	fs.StringVar(&f.token, "token", "", "bearer token")
	fs.StringVar(&f.output, "o", "table", "output format")
	fs.StringVar(&f.output, "output", "table", "output format")
	fs.StringVar(&f.reason, "reason", "", "reason for the audit log")
	fs.IntVar(&f.limit, "limit", 0, "audit entries")
	fs.StringVar(&f.hold, "hold", "", "hold of each shift step")
	fs.StringVar(&f.maxErrorRatio, "max-error-ratio", "", "shift guard error ratio")
	fs.StringVar(&f.maxP95, "max-p95", "", "shift guard p95")
	fs.StringVar(&f.minRequests, "min-requests", "", "shift guard minimum requests")
	fs.StringVar(&f.maxWait, "max-wait", "", "shift guard longest wait")
	fs.StringVar(&f.to, "to", "", "failover target region")
	fs.BoolVar(&f.force, "force", false, "fail over although the primary is up")
	fs.BoolVar(&f.acceptDataLoss, "accept-data-loss", false, "promote over the rpo")
	fs.BoolVar(&f.dryRun, "dry-run", false, "say what a failover would do")
	fs.StringVar(&f.duration, "duration", "", "drill duration")
	return fs
}

func cmdCtl(args []string, stdout, stderr io.Writer) int {
	var f ctlFlags
	fs := newCtlFlagSet(&f)
	flagArgs, pos := splitArgs(fs, args)
	if err := fs.Parse(flagArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			say(stdout, "%s", ctlUsage)
			return 0
		}
		say(stderr, "meridian ctl: %v\n\n%s", err, ctlUsage)
		return 2
	}
	if len(pos) == 0 {
		say(stderr, "%s", ctlUsage)
		return 2
	}
	cmd, err := ctlPrepare(fs, &f, pos)
	if err == nil {
		var c *ctlClient
		if c, err = newCtlClient(f.admin, ctlToken(f.token)); err == nil {
			defer c.close()
			err = cmd.run(c, stdout, pos[1:], &f)
		}
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		say(stderr, "meridian ctl: %v\n", err)
		return 2
	}
	say(stderr, "meridian ctl: %v\n", err)
	return 1
}

// say writes a message for the user; when the terminal itself fails there
// is no one left to tell.
func say(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

// ctlPrepare finds the subcommand and checks its arguments and flags.
func ctlPrepare(fs *flag.FlagSet, f *ctlFlags, pos []string) (*ctlCommand, error) {
	var cmd *ctlCommand
	for i := range ctlCommands {
		if ctlCommands[i].name == pos[0] {
			cmd = &ctlCommands[i]
		}
	}
	if cmd == nil {
		return nil, usagef("unknown subcommand %q (meridian ctl -h lists them)", pos[0])
	}
	var bad error
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) {
		f.set[fl.Name] = true
		if !hasString(globalCtlFlags, fl.Name) && !hasString(cmd.flags, fl.Name) && bad == nil {
			bad = usagef("flag --%s does not apply to %s; usage: %s", fl.Name, cmd.name, cmd.usage())
		}
	})
	if bad != nil {
		return nil, bad
	}
	if len(pos)-1 != len(cmd.args) {
		return nil, usagef("%s takes %d argument(s), got %d; usage: %s", cmd.name, len(cmd.args), len(pos)-1, cmd.usage())
	}
	if f.output != "table" && f.output != "json" {
		return nil, usagef("-o must be table or json, not %q", f.output)
	}
	return cmd, nil
}

func (c *ctlCommand) usage() string {
	parts := append([]string{"meridian ctl", c.name}, c.args...)
	for _, fl := range c.flags {
		switch fl {
		case "reason":
			parts = append(parts, "[--reason TEXT]")
		case "limit":
			parts = append(parts, "[--limit N]")
		case "hold", "max-p95", "max-wait":
			parts = append(parts, "[--"+fl+" DUR]")
		case "max-error-ratio":
			parts = append(parts, "[--max-error-ratio R]")
		case "min-requests":
			parts = append(parts, "[--min-requests N]")
		}
	}
	return strings.Join(parts, " ")
}

// ctlToken is the token from --token, else from MERIDIAN_TOKEN.
func ctlToken(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv("MERIDIAN_TOKEN")
}

// splitArgs separates flags (with their values) from positional arguments,
// so that flags may follow the subcommand and its arguments, as in
// "dial api eu-west 0 --reason drain". Everything after "--" is positional.
func splitArgs(fs *flag.FlagSet, args []string) (flags, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(pos, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		fl := fs.Lookup(name)
		if fl == nil || isBoolFlag(fl) {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return flags, pos
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// adminBase checks and normalises the --admin address; a bare host:port
// means http.
func adminBase(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("--admin %q is not an http(s) URL", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}
