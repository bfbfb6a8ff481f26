package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/state"
)

func ctlShift(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	service, region := args[0], args[1]
	steps, err := parseSteps(args[2])
	if err != nil {
		return err
	}
	req := admin.ShiftRequest{Region: region, Steps: steps, Reason: f.reason}
	if req.Hold, err = durationFlag("hold", f.hold); err != nil {
		return err
	}
	if req.Guard.MaxP95, err = durationFlag("max-p95", f.maxP95); err != nil {
		return err
	}
	if req.Guard.MaxWait, err = durationFlag("max-wait", f.maxWait); err != nil {
		return err
	}
	if req.Guard.MaxErrorRatio, err = ratioFlag(f.maxErrorRatio); err != nil {
		return err
	}
	if f.minRequests != "" {
		n, err := strconv.Atoi(f.minRequests)
		if err != nil || n < 0 {
			return usagef("--min-requests must be a whole number of at least 0, not %q", f.minRequests)
		}
		req.Guard.MinRequests = n
	}
	var sh state.Shift
	path := "/v1/services/" + url.PathEscape(service) + "/shifts"
	if printed, err := c.call(out, f, http.MethodPost, path, nil, req, &sh); printed || err != nil {
		return err
	}
	if err := printf(out, "%s: shift %s of %s started: dial %d%% → %s, each step held %s\n\n",
		sh.Service, sh.ID, sh.Region, sh.StartDial, stepList(sh.Steps, "% → ")+"%", sh.Hold); err != nil {
		return err
	}
	return printShifts(out, []state.Shift{sh})
}

func ctlShifts(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	var body admin.ShiftsBody
	path := "/v1/services/" + url.PathEscape(args[0]) + "/shifts"
	if printed, err := c.call(out, f, http.MethodGet, path, nil, nil, &body); printed || err != nil {
		return err
	}
	if len(body.Shifts) == 0 {
		return printf(out, "%s: no shifts\n", args[0])
	}
	return printShifts(out, body.Shifts)
}

func ctlAbort(c *ctlClient, out io.Writer, args []string, f *ctlFlags) error {
	service, id := args[0], args[1]
	var sh state.Shift
	path := "/v1/services/" + url.PathEscape(service) + "/shifts/" + url.PathEscape(id) + "/abort"
	req := admin.AbortRequest{Reason: f.reason}
	if printed, err := c.call(out, f, http.MethodPost, path, nil, req, &sh); printed || err != nil {
		return err
	}
	return printf(out, "%s: shift %s aborted; dial of %s back to %d%%\n", sh.Service, sh.ID, sh.Region, sh.StartDial)
}

// parseSteps reads "10,50,100" (a trailing % on each is allowed).
func parseSteps(s string) ([]int, error) {
	var steps []int
	for _, part := range strings.Split(s, ",") {
		p := strings.TrimSuffix(strings.TrimSpace(part), "%")
		d, err := strconv.Atoi(p)
		if err != nil || d < 0 || d > 100 {
			return nil, usagef("each STEP must be a whole number from 0 to 100, not %q (as in 10,50,100)", part)
		}
		steps = append(steps, d)
	}
	return steps, nil
}

// durationFlag checks a duration flag and passes it on as the API's
// string; "" leaves the default.
func durationFlag(name, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(v); err != nil || d <= 0 {
		return "", usagef("--%s must be a positive duration such as 5m or 500ms, not %q", name, v)
	}
	return v, nil
}

// ratioFlag reads an error ratio as 0..1 or as a percentage ("1%").
func ratioFlag(v string) (float64, error) {
	if v == "" {
		return 0, nil
	}
	num, div := v, 1.0
	if p, ok := strings.CutSuffix(v, "%"); ok {
		num, div = p, 100
	}
	r, err := strconv.ParseFloat(num, 64)
	if err != nil || !(r/div >= 0 && r/div <= 1) {
		return 0, usagef("--max-error-ratio must be from 0 to 1 (or 0%% to 100%%), not %q", v)
	}
	return r / div, nil
}

func stepList(steps []int, sep string) string {
	parts := make([]string, len(steps))
	for i, d := range steps {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, sep)
}

// shiftStep renders where a shift stands, as "2/3 (50%)".
func shiftStep(sh *state.Shift) string {
	if sh.Step < 0 || sh.Step >= len(sh.Steps) {
		return fmt.Sprintf("%d/%d", sh.Step+1, len(sh.Steps))
	}
	return fmt.Sprintf("%d/%d (%d%%)", sh.Step+1, len(sh.Steps), sh.Steps[sh.Step])
}

func printShifts(out io.Writer, shifts []state.Shift) error {
	t := newTable(out)
	t.row("ID\tREGION\tSTATE\tSTEP\tSTEPS\tSTARTED\tBY\tWHY\tOUTCOME")
	for i := range shifts {
		sh := &shifts[i]
		t.row("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", sh.ID, sh.Region, sh.State, shiftStep(sh),
			stepList(sh.Steps, ","), sh.Created.UTC().Format(time.RFC3339), orDash(sh.Token),
			orDash(oneLine(sh.StartReason)), orDash(oneLine(sh.Reason)))
	}
	return t.flush()
}
