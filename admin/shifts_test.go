package admin_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/state"
)

func TestShiftAuth(t *testing.T) {
	e := newEnv(t)
	start := `{"region": "r2", "steps": [50], "hold": "1m", "reason": "auth test"}`
	cases := []struct {
		name, method, path, body, secret string
		want                             int
	}{
		{"start without token", http.MethodPost, "/v1/services/api/shifts", start, "", http.StatusUnauthorized},
		{"start with bad token", http.MethodPost, "/v1/services/api/shifts", start, badSecret, http.StatusUnauthorized},
		{"start with read token", http.MethodPost, "/v1/services/api/shifts", start, readSecret, http.StatusForbidden},
		{"list without token", http.MethodGet, "/v1/services/api/shifts", "", "", http.StatusUnauthorized},
		{"list with read token", http.MethodGet, "/v1/services/api/shifts", "", readSecret, http.StatusOK},
		{"abort without token", http.MethodPost, "/v1/services/api/shifts/x/abort", "", "", http.StatusUnauthorized},
		{"abort with read token", http.MethodPost, "/v1/services/api/shifts/x/abort", "", readSecret, http.StatusForbidden},
		{"start with write token", http.MethodPost, "/v1/services/api/shifts", start, writeSecret, http.StatusCreated},
		{"list with write token", http.MethodGet, "/v1/services/api/shifts", "", writeSecret, http.StatusOK},
		{"wrong method", http.MethodDelete, "/v1/services/api/shifts", "", writeSecret, http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.stateBytes()
			r := e.do(tc.method, tc.path, tc.secret, tc.body)
			if r.status != tc.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want >= 400 {
				r.errorMessage(t)
				if !bytes.Equal(before, e.stateBytes()) {
					t.Error("a refused request changed the state file")
				}
			}
		})
	}
}

func TestShiftLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/v1/services/api/shifts", writeSecret,
		`{"region": "r1", "steps": [50, 0], "hold": "1m", "guard": {"max_error_ratio": 0.01, "max_p95": "500ms"}, "reason": "drain r1"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("start: got %d %s, want 201", r.status, r.body)
	}
	var sh state.Shift
	r.decode(t, &sh)
	if sh.ID == "" || sh.State != state.ShiftRunning || sh.StartDial != 100 || sh.Step != 0 || sh.Token != "ops" {
		t.Fatalf("started shift %+v", sh)
	}
	if loc := r.header.Get("Location"); loc != "/v1/services/api/shifts/"+sh.ID {
		t.Errorf("Location %q", loc)
	}
	if !strings.Contains(string(r.body), `"hold": "1m0s"`) || !strings.Contains(string(r.body), `"max_p95": "500ms"`) ||
		!strings.Contains(string(r.body), `"max_wait": "4m0s"`) || !strings.Contains(string(r.body), `"min_requests": 100`) {
		t.Errorf("shift JSON lacks its durations and defaults:\n%s", r.body)
	}
	if d := dialOf(e.service("api"), "r1"); d != 50 {
		t.Errorf("dial of r1 on step 1: %d, want 50", d)
	}

	refusals := []struct {
		name, method, path, body string
		want                     int
		msg                      string
	}{
		{"second shift of the region", http.MethodPost, "/v1/services/api/shifts", `{"region": "r1", "steps": [10]}`,
			http.StatusConflict, "shift " + sh.ID + " is already running on api/r1 (step 1 of 2); abort it first"},
		{"dial under shift", http.MethodPatch, "/v1/services/api/dials", `{"dials": {"r1": 20}}`,
			http.StatusConflict, "the dial of api/r1 is under shift " + sh.ID},
		{"unknown service", http.MethodPost, "/v1/services/nope/shifts", `{"region": "r1", "steps": [10]}`,
			http.StatusNotFound, `unknown service "nope"`},
		{"list of unknown service", http.MethodGet, "/v1/services/nope/shifts", "", http.StatusNotFound, `unknown service "nope"`},
		{"foreign region", http.MethodPost, "/v1/services/api/shifts", `{"region": "r9", "steps": [10]}`,
			http.StatusBadRequest, `region "r9" is not a region of service "api"`},
		{"error ratio above 1", http.MethodPost, "/v1/services/api/shifts", `{"region": "r2", "steps": [10], "guard": {"max_error_ratio": 1.5}}`,
			http.StatusBadRequest, "max_error_ratio 1.5 is outside 0..1"},
		{"negative min_requests", http.MethodPost, "/v1/services/api/shifts", `{"region": "r2", "steps": [10], "guard": {"min_requests": -1}}`,
			http.StatusBadRequest, "min_requests -1 is negative"},
		{"unknown field", http.MethodPost, "/v1/services/api/shifts", `{"region": "r2", "steps": [10], "step": 1}`,
			http.StatusBadRequest, `unknown field "step"`},
		{"abort of unknown shift", http.MethodPost, "/v1/services/api/shifts/nope/abort", "",
			http.StatusNotFound, `service "api" has no shift "nope"`},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, writeSecret, tc.body)
			if r.status != tc.want {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.want)
			}
			if got := r.errorMessage(t); !strings.Contains(got, tc.msg) {
				t.Errorf("error %q, want it to contain %q", got, tc.msg)
			}
		})
	}

	// The shift survives a restart, still running on its step.
	e.restart()
	var list admin.ShiftsBody
	e.must(http.MethodGet, "/v1/services/api/shifts", "").decode(t, &list)
	if len(list.Shifts) != 1 || list.Shifts[0].ID != sh.ID || list.Shifts[0].State != state.ShiftRunning || list.Shifts[0].Step != 0 {
		t.Fatalf("after restart: %+v", list.Shifts)
	}

	r = e.must(http.MethodPost, "/v1/services/api/shifts/"+sh.ID+"/abort", `{"reason": "not today"}`)
	var ab state.Shift
	r.decode(t, &ab)
	if ab.State != state.ShiftAborted || ab.Reason != "aborted by ops: not today" {
		t.Errorf("aborted: %s %q", ab.State, ab.Reason)
	}
	if d := dialOf(e.service("api"), "r1"); d != 100 {
		t.Errorf("dial of r1 after abort: %d, want the start dial 100", d)
	}
	r = e.do(http.MethodPost, "/v1/services/api/shifts/"+sh.ID+"/abort", writeSecret, "")
	if r.status != http.StatusConflict || r.errorMessage(t) != "shift "+sh.ID+" is aborted, not running" {
		t.Errorf("second abort: %d %s, want 409", r.status, r.body)
	}
	var audit admin.AuditBody
	e.must(http.MethodGet, "/v1/audit?limit=3", "").decode(t, &audit)
	if len(audit.Entries) != 3 || audit.Entries[0].Action != "shift.abort" || audit.Entries[0].Old != "50" ||
		audit.Entries[0].New != "100" || audit.Entries[0].Reason != "not today" ||
		audit.Entries[1].Action != "shift.step" || audit.Entries[2].Action != "shift.start" || audit.Entries[2].Reason != "drain r1" {
		t.Errorf("audit, newest first: %+v", audit.Entries)
	}
}
