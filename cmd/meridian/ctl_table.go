package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// table writes aligned columns (cells separated by \t) and keeps the first
// write error for flush to return.
type table struct {
	tw  *tabwriter.Writer
	err error
}

func newTable(out io.Writer) *table {
	return &table{tw: tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)}
}

func (t *table) row(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.tw, format+"\n", args...)
	}
}

func (t *table) flush() error {
	if t.err != nil {
		return t.err
	}
	return t.tw.Flush()
}

// printf writes to out and returns the write error, if any.
func printf(out io.Writer, format string, args ...any) error {
	_, err := fmt.Fprintf(out, format, args...)
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func upDown(b bool) string {
	if b {
		return "up"
	}
	return "down"
}

func millis(ms float64) string {
	if ms <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", ms)
}

// ago renders a past time relative to now, "never" for the zero time.
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := max(now.Sub(t), 0)
	return d.Round(100*time.Millisecond).String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table cell on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func printStatus(out io.Writer, st *node.StatusView) error {
	t := newTable(out)
	t.row("node\t%s", st.Node)
	t.row("version\t%s", st.Version)
	t.row("uptime\t%s", st.Uptime)
	t.row("config generation\t%d", st.Generation)
	t.row("ready\t%s", yesNo(st.Ready))
	if st.Geo != "" {
		t.row("geoip\t%s", st.Geo)
	}
	if st.State.Backend != "" {
		t.row("state\t%s", stateLine(&st.State))
	}
	t.row("")
	if err := t.flush(); err != nil {
		return err
	}
	if err := printAnycast(out, st); err != nil { // ctl_drain.go
		return err
	}
	if err := printRegions(out, st.Regions); err != nil {
		return err
	}
	return printReplicas(out, st.Regions)
}

// printReplicas lists the replica lag of regions with a lag endpoint; a
// lag that cannot be read shows as unknown with the reason.
func printReplicas(out io.Writer, regions []node.RegionView) error {
	t := newTable(out)
	shown := false
	for _, r := range regions {
		if r.Replica == nil {
			continue
		}
		if !shown {
			t.row("")
			t.row("REGION\tREPLICA LAG\tCHECKED\tERROR")
			shown = true
		}
		lag := "unknown"
		if r.Replica.Known {
			lag = fmt.Sprintf("%gs", r.Replica.Seconds)
		}
		t.row("%s\t%s\t%s\t%s", r.Name, lag, ago(r.Replica.Checked, time.Now()), orDash(oneLine(r.Replica.Error)))
	}
	return t.flush()
}

// printRegions writes one line per endpoint; a region's own columns are on
// its first endpoint's line.
func printRegions(out io.Writer, regions []node.RegionView) error {
	now := time.Now()
	t := newTable(out)
	t.row("REGION\tSERVING\tHEALTH\tOVERRIDE\tRTT\tENDPOINT\tSTATE\tPROBE RTT\tLAST CHECK\tRESULT")
	for _, r := range regions {
		head := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", r.Name, yesNo(r.Effective), upDown(r.Up), r.Override, millis(r.RTTMillis))
		if len(r.Endpoints) == 0 {
			t.row("%s\t-\t\t\t\t", head)
		}
		for i, e := range r.Endpoints {
			if i > 0 {
				head = "\t\t\t\t"
			}
			st := upDown(e.Up)
			if e.Ejected {
				st = "ejected"
			}
			t.row("%s\t%s\t%s\t%s\t%s\t%s", head, e.Endpoint, st, millis(e.RTTMillis),
				ago(e.LastCheck, now), orDash(oneLine(e.LastResult)))
		}
	}
	return t.flush()
}

// printServices writes one line per region of each service.
func printServices(out io.Writer, services []node.ServiceView) error {
	t := newTable(out)
	t.row("SERVICE\tMODE\tPOLICY\tDEGRADED\tREGION\tDIAL\tHEALTH\tOVERRIDE\tELIGIBLE")
	for _, s := range services {
		head := fmt.Sprintf("%s\t%s\t%s\t%s", s.Name, s.Mode, s.Policy, yesNo(s.Degraded))
		for i, r := range s.Regions {
			if i > 0 {
				head = "\t\t\t"
			}
			t.row("%s\t%s\t%d%%\t%s\t%s\t%s", head, r.Name, r.Dial, upDown(r.Up), r.Override, yesNo(r.Eligible))
		}
	}
	return t.flush()
}

func printExplain(out io.Writer, ex *node.Explanation) error {
	t := newTable(out)
	t.row("service\t%s (%s, %s)", ex.Service, ex.Policy, ex.Mode)
	client := ex.Client.Addr
	for _, s := range []string{ex.Client.Subdivision, ex.Client.Country, ex.Client.Continent} {
		if s != "" {
			client += " " + s
		}
	}
	if ex.Client.Lat != nil && ex.Client.Lon != nil {
		client += fmt.Sprintf(" (%.2f, %.2f)", *ex.Client.Lat, *ex.Client.Lon)
	}
	t.row("client\t%s", client)
	if ex.Rule != "" {
		t.row("rule\t%s", ex.Rule)
	}
	t.row("order\t%s", orDash(strings.Join(ex.Order, ", ")))
	if ex.FailOpen {
		t.row("fail open\tyes: no region was eligible")
	}
	if ex.NoData {
		t.row("nodata\tyes: no region was eligible and the service fails closed")
	}
	t.row("outcome\t%s", ex.Outcome)
	if a := ex.DNS; a != nil {
		scope := "-"
		if a.Scope != nil {
			scope = fmt.Sprint(*a.Scope)
		}
		t.row("dns answer\t%s %s (ECS %s, scope /%s)", a.Name, a.Rcode, a.ECS, scope)
		for _, r := range a.Records {
			t.row("\t%s %s ttl %d", r.Type, r.Value, r.TTL)
		}
		if len(a.Records) == 0 {
			t.row("\tno records (NODATA)")
		}
	}
	if p := ex.Proxy; p != nil {
		ep := p.Endpoint
		if ep == "" {
			ep = strings.Join(p.Candidates, ", ")
		}
		t.row("proxy\t%s: %s (%s)", p.Region, ep, p.Choice)
	}
	t.row("")
	if err := t.flush(); err != nil {
		return err
	}
	t = newTable(out)
	t.row("REGION\tHEALTH\tOVERRIDE\tDIAL\tELIGIBLE\tSCORE\tROLL\tKEPT\tREASON")
	for _, r := range ex.Regions {
		score, roll, kept := "-", "-", "-"
		if r.Score != nil {
			score = strings.TrimSpace(fmt.Sprintf("%.1f %s", *r.Score, r.Unit))
		}
		if r.Roll != nil {
			roll = fmt.Sprintf("%.1f", *r.Roll)
		}
		if r.Kept != nil {
			kept = yesNo(*r.Kept)
		}
		t.row("%s\t%s\t%s\t%d%%\t%s\t%s\t%s\t%s\t%s", r.Name, upDown(r.Up), r.Override, r.Dial,
			yesNo(r.Eligible), score, roll, kept, orDash(oneLine(r.Reason)))
	}
	return t.flush()
}

func printAudit(out io.Writer, entries []state.AuditEntry) error {
	if len(entries) == 0 {
		return printf(out, "no changes recorded\n")
	}
	t := newTable(out)
	t.row("TIME\tNODE\tTOKEN\tACTION\tTARGET\tOLD\tNEW\tREASON")
	for _, e := range entries {
		t.row("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", e.Time.UTC().Format(time.RFC3339), orDash(e.Node), orDash(e.Token),
			e.Action, e.Target, orDash(oneLine(e.Old)), orDash(oneLine(e.New)), orDash(oneLine(e.Reason)))
	}
	return t.flush()
}
