package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/state"
)

func TestCtlShifts(t *testing.T) {
	noLeaks(t)
	_, url := ctlNode(t)
	w := []string{"--admin", url, "--token", ctlWriteSecret}
	r := []string{"--admin", url, "--token", ctlReadSecret}

	code, out, errOut := ctl(append(w, "shift", "api", "eu-west", "50%,0", "--hold", "1m", "--max-error-ratio", "1%",
		"--max-p95", "500ms", "--min-requests", "10", "--reason", "drain eu-west")...)
	if code != 0 {
		t.Fatalf("shift: exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`api: shift ([0-9a-f]+) of eu-west started: dial 100% → 50% → 0%, each step held 1m0s`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("shift output:\n%s", out)
	}
	id := m[1]
	for _, want := range []string{"ID", "REGION", "STATE", "STEP", "STEPS", "STARTED", "WHY", "OUTCOME", id, "running", "drain eu-west", "1/2 (50%)", "50,0"} {
		if !strings.Contains(out, want) {
			t.Errorf("shift output lacks %q:\n%s", want, out)
		}
	}
	if d := ctlDialOf(t, url, "api", "eu-west"); d != 50 {
		t.Errorf("dial of eu-west on step 1: %d, want 50", d)
	}

	t.Run("shifts table", func(t *testing.T) {
		code, out, errOut := ctl(append(r, "shifts", "api")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !regexp.MustCompile(id + `\s+eu-west\s+running\s+1/2 \(50%\)\s+50,0\s+\d{4}-\d\d-\d\dT\S+Z\s+ops\s+drain eu-west\s+-`).MatchString(out) {
			t.Errorf("shifts table:\n%s", out)
		}
	})
	t.Run("shifts json", func(t *testing.T) {
		code, out, errOut := ctl(append(r, "shifts", "api", "-o", "json")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var body admin.ShiftsBody
		if err := json.Unmarshal([]byte(out), &body); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		g := body.Shifts[0].Guard
		if len(body.Shifts) != 1 || body.Shifts[0].ID != id || g.MaxErrorRatio != 0.01 || g.MaxP95.String() != "500ms" || g.MinRequests != 10 {
			t.Errorf("shifts: %+v", body.Shifts)
		}
	})
	refusals := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"second shift", append(w, "shift", "api", "eu-west", "10"), 1, "conflict: shift " + id + " is already running on api/eu-west"},
		{"dial under shift", append(w, "dial", "api", "eu-west", "20"), 1, "conflict: the dial of api/eu-west is under shift " + id},
		{"read token", append(r, "shift", "api", "us-east", "10"), 1, "forbidden: the token is read-only"},
		{"unknown service", append(r, "shifts", "nope"), 1, `not found: unknown service "nope"`},
		{"foreign region", append(w, "shift", "api", "ap-south", "10"), 1, `refused: region "ap-south" is not a region of service "api"`},
		{"unknown shift", append(w, "abort", "api", "feedbeef"), 1, `not found: service "api" has no shift "feedbeef"`},
		{"bad step", append(w, "shift", "api", "us-east", "10,x"), 2, `each STEP must be a whole number from 0 to 100, not "x"`},
		{"step above 100", append(w, "shift", "api", "us-east", "101"), 2, `not "101"`},
		{"bad hold", append(w, "shift", "api", "us-east", "10", "--hold", "5x"), 2, `--hold must be a positive duration such as 5m or 500ms, not "5x"`},
		{"bad p95", append(w, "shift", "api", "us-east", "10", "--max-p95", "-1s"), 2, `--max-p95 must be a positive duration`},
		{"bad ratio", append(w, "shift", "api", "us-east", "10", "--max-error-ratio", "2"), 2, `--max-error-ratio must be from 0 to 1 (or 0% to 100%), not "2"`},
		{"bad percentage", append(w, "shift", "api", "us-east", "10", "--max-error-ratio", "120%"), 2, `not "120%"`},
		{"bad min requests", append(w, "shift", "api", "us-east", "10", "--min-requests", "-1"), 2, `--min-requests must be a whole number of at least 0, not "-1"`},
		{"flag of another command", append(w, "dial", "api", "us-east", "10", "--hold", "1m"), 2, "flag --hold does not apply to dial"},
		{"missing steps", append(w, "shift", "api", "us-east"), 2,
			"shift takes 3 argument(s), got 2; usage: meridian ctl shift SERVICE REGION STEP[,STEP…] [--hold DUR] [--max-error-ratio R] [--max-p95 DUR] [--min-requests N] [--max-wait DUR] [--reason TEXT]"},
		{"abort without id", append(w, "abort", "api"), 2, "usage: meridian ctl abort SERVICE SHIFT_ID [--reason TEXT]"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := ctl(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, errOut, tc.code, tc.msg)
			}
		})
	}

	code, out, errOut = ctl(append(w, "abort", "api", id, "--reason", "not today")...)
	if code != 0 || !strings.Contains(out, "api: shift "+id+" aborted; dial of eu-west back to 100%") {
		t.Fatalf("abort: exit %d, %q %q", code, out, errOut)
	}
	if d := ctlDialOf(t, url, "api", "eu-west"); d != 100 {
		t.Errorf("dial of eu-west after abort: %d, want 100", d)
	}
	code, _, errOut = ctl(append(w, "abort", "api", id)...)
	if code != 1 || !strings.Contains(errOut, "conflict: shift "+id+" is aborted, not running") {
		t.Errorf("second abort: exit %d, %q", code, errOut)
	}
	code, out, _ = ctl(append(r, "shifts", "api")...)
	if code != 0 || !regexp.MustCompile(id+`\s+eu-west\s+aborted\s+1/2 \(50%\).*aborted by ops: not today`).MatchString(out) {
		t.Errorf("shifts after abort: exit %d\n%s", code, out)
	}
	code, out, _ = ctl(append(w, "-o", "json", "shift", "api", "us-east", "100")...)
	var sh state.Shift
	if code != 0 || json.Unmarshal([]byte(out), &sh) != nil || sh.State != state.ShiftRunning || sh.Hold.String() != "5m0s" {
		t.Errorf("shift -o json: exit %d, %s", code, out)
	}
}

func TestParseSteps(t *testing.T) {
	cases := []struct {
		in   string
		want string
		err  bool
	}{
		{"10,50,100", "10,50,100", false},
		{"10%, 50%", "10,50", false},
		{"0", "0", false},
		{"", "", true},
		{"10,,20", "", true},
		{"-5", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSteps(tc.in)
			if (err != nil) != tc.err || (err == nil && stepList(got, ",") != tc.want) {
				t.Errorf("parseSteps(%q) = %v, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}
