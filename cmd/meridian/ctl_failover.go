package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/state"
)

// ctlPoll is how often ctl looks at a failover or drill it waits for.
const ctlPoll = 200 * time.Millisecond

func ctlFailover(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	service := args[0]
	if f.to == "" {
		return usagef("failover needs --to REGION")
	}
	req := admin.FailoverRequest{To: f.to, Force: f.force, AcceptDataLoss: f.acceptDataLoss, DryRun: f.dryRun, Reason: f.reason}
	var fo state.Failover
	path := "/v1/services/" + url.PathEscape(service) + "/failovers"
	if printed, err := c.call(out, f, http.MethodPost, path, nil, req, &fo); printed || err != nil {
		return err
	}
	if fo.DryRun {
		if err := printf(out, "%s: dry run of a failover %s → %s\n", fo.Service, fo.From, fo.To); err != nil {
			return err
		}
		if err := printSteps(out, fo.Steps); err != nil {
			return err
		}
		return printf(out, "plan: %s\n", fo.Plan)
	}
	if err := printf(out, "%s: failover %s started: writes primary %s → %s\n", fo.Service, fo.ID, fo.From, fo.To); err != nil {
		return err
	}
	shown := 0
	for {
		if err := printSteps(out, fo.Steps[shown:]); err != nil {
			return err
		}
		shown = len(fo.Steps)
		if fo.State != state.FailoverRunning {
			break
		}
		time.Sleep(ctlPoll)
		next, err := findFailover(c, service, fo.ID)
		if err != nil {
			return err
		}
		fo = next
	}
	if err := printf(out, "%s: failover %s %s: %s\n", fo.Service, fo.ID, fo.State, fo.Outcome); err != nil {
		return err
	}
	if fo.State != state.FailoverDone {
		return fmt.Errorf("failover %s ended %s", fo.ID, fo.State)
	}
	return printf(out, "RTO %s  RPO %s\n", secs(fo.RTOSeconds), secs(fo.RPOSeconds))
}

func findFailover(c *ctlClient, service, id string) (state.Failover, error) {
	data, err := c.do(http.MethodGet, "/v1/services/"+url.PathEscape(service)+"/failovers", nil, nil)
	if err != nil {
		return state.Failover{}, err
	}
	var body admin.FailoversBody
	if err := json.Unmarshal(data, &body); err != nil {
		return state.Failover{}, fmt.Errorf("reading failovers: %w", err)
	}
	for _, f := range body.Failovers {
		if f.ID == id {
			return f, nil
		}
	}
	return state.Failover{}, fmt.Errorf("failover %s is no longer listed", id)
}

func printSteps(out io.Writer, steps []state.FailoverStep) error {
	for _, s := range steps {
		if err := printf(out, "  %d %-9s %s  %s\n", s.Step, s.Name, s.Time.Local().Format("15:04:05.000"), oneLine(s.Note)); err != nil {
			return err
		}
	}
	return nil
}

// secs renders a measured figure in seconds; "-" when unmeasured, and
// "unknown" for an RPO whose lag could not be read.
func secs(p *float64) string {
	switch {
	case p == nil:
		return "-"
	case *p < 0:
		return "unknown"
	}
	return fmt.Sprintf("%.3fs", *p)
}

func ctlFailovers(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	var body admin.FailoversBody
	path := "/v1/services/" + url.PathEscape(args[0]) + "/failovers"
	if printed, err := c.call(out, f, http.MethodGet, path, nil, nil, &body); printed || err != nil {
		return err
	}
	if len(body.Failovers) == 0 {
		return printf(out, "%s: no failovers\n", args[0])
	}
	t := newTable(out)
	t.row("ID\tFROM\tTO\tSTATE\tSTEP\tRTO\tRPO\tSTARTED\tOUTCOME")
	for _, fo := range body.Failovers {
		t.row("%s\t%s\t%s\t%s\t%d %s\t%s\t%s\t%s\t%s", fo.ID, fo.From, fo.To, fo.State, fo.Step, stepLabel(fo),
			secs(fo.RTOSeconds), secs(fo.RPOSeconds), fo.Created.Local().Format("2006-01-02 15:04:05"), orDash(oneLine(fo.Outcome)))
	}
	return t.flush()
}

// stepNames are the runbook's steps by number, as the failover records them.
var stepNames = [...]string{"", "impact", "freeze", "readiness", "lag", "promote", "writes", "traffic", "done"}

func stepLabel(fo state.Failover) string {
	if fo.Step > 0 && fo.Step < len(stepNames) {
		return stepNames[fo.Step]
	}
	return "?"
}

func ctlDrill(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	service, region := args[0], args[1]
	req := admin.DrillRequest{Region: region, Duration: f.duration, Reason: f.reason}
	var dr state.Drill
	path := "/v1/services/" + url.PathEscape(service) + "/drills"
	data, err := c.do(http.MethodPost, path, nil, req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &dr); err != nil {
		return fmt.Errorf("reading the drill: %w", err)
	}
	if f.output != "json" {
		if err := printf(out, "%s: drill %s forces %s down for %s; waiting\n", dr.Service, dr.ID, dr.Region, dr.Duration); err != nil {
			return err
		}
	}
	for dr.State == state.DrillRunning {
		time.Sleep(ctlPoll)
		data, err = c.do(http.MethodGet, path, nil, nil)
		if err != nil {
			return err
		}
		var body admin.DrillsBody
		if err := json.Unmarshal(data, &body); err != nil {
			return fmt.Errorf("reading drills: %w", err)
		}
		found := false
		for _, d := range body.Drills {
			if d.ID == dr.ID {
				dr, found = d, true
			}
		}
		if !found {
			return fmt.Errorf("drill %s is no longer listed", dr.ID)
		}
	}
	if f.output == "json" {
		b, err := json.MarshalIndent(dr, "", "  ")
		if err != nil {
			return err
		}
		_, err = out.Write(append(b, '\n'))
		return err
	}
	if err := printf(out, "%s: drill %s %s: %s\n", dr.Service, dr.ID, dr.State, dr.Outcome); err != nil {
		return err
	}
	return printf(out, "RTO %s  errors %d of %d requests\n", secs(dr.RTOSeconds), dr.Errors, dr.Requests)
}
