package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// The shift operations of fakeBackend record what they were asked.
var lastShift struct {
	service, id string
	req         node.ShiftRequest
}

func (f *fakeBackend) StartShift(service string, req node.ShiftRequest, who node.Actor) (state.Shift, error) {
	f.actor = who
	lastShift.service, lastShift.req = service, req
	return state.Shift{ID: "abc123", Service: service, Region: req.Region, Steps: req.Steps, State: state.ShiftRunning}, f.err
}

func (f *fakeBackend) Shifts(service string) ([]state.Shift, error) {
	lastShift.service = service
	return nil, f.err
}

func (f *fakeBackend) AbortShift(service, id string, who node.Actor) (state.Shift, error) {
	f.actor = who
	lastShift.service, lastShift.id = service, id
	return state.Shift{ID: id, State: state.ShiftAborted}, f.err
}

// TestShiftRequestDecoding checks what the API makes of shift bodies
// before the node sees them.
func TestShiftRequestDecoding(t *testing.T) {
	cfg := config.Admin{Tokens: []config.Token{{Name: "ops", Role: "write", Secret: "s3cret"}}}
	fb := &fakeBackend{}
	srv := httptest.NewServer(New(fb, cfg, Options{Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	post := func(path, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e errorBody
		if resp.StatusCode >= 400 && json.Unmarshal(b, &e) == nil {
			return resp.StatusCode, e.Error
		}
		return resp.StatusCode, string(b)
	}

	code, body := post("/v1/services/api/shifts", `{"region": "us-west", "steps": [10, 100], "hold": "5m",
		"guard": {"max_error_ratio": 0.01, "max_p95": "500ms", "min_requests": 50, "max_wait": "30m"}, "reason": "cutover"}`)
	if code != http.StatusCreated {
		t.Fatalf("got %d %s, want 201", code, body)
	}
	want := node.ShiftRequest{Region: "us-west", Steps: []int{10, 100}, Hold: 5 * time.Minute,
		Guard: state.Guard{MaxErrorRatio: 0.01, MaxP95: 500 * time.Millisecond, MinRequests: 50, MaxWait: 30 * time.Minute}}
	got := lastShift.req
	if lastShift.service != "api" || got.Region != want.Region || !slices.Equal(got.Steps, want.Steps) ||
		got.Hold != want.Hold || got.Guard != want.Guard {
		t.Errorf("backend got %s %+v, want api %+v", lastShift.service, got, want)
	}
	if fb.actor != (node.Actor{Token: "ops", Reason: "cutover"}) {
		t.Errorf("actor %+v", fb.actor)
	}

	code, body = post("/v1/services/api/shifts/abc123/abort", "")
	if code != http.StatusOK || lastShift.id != "abc123" || !strings.Contains(body, `"state": "aborted"`) {
		t.Errorf("abort without a body: %d %s (id %q)", code, body, lastShift.id)
	}

	bad := []struct {
		name, body, msg string
	}{
		{"no region", `{"steps": [10]}`, `"region" is required`},
		{"no steps", `{"region": "r"}`, `"steps" must list at least one dial`},
		{"step out of range", `{"region": "r", "steps": [10, 101]}`, "step 2: dial 101 is outside 0..100"},
		{"bad hold", `{"region": "r", "steps": [10], "hold": "5 minutes"}`, `hold "5 minutes" is not a duration such as "5m" or "500ms"`},
		{"numeric hold", `{"region": "r", "steps": [10], "hold": 300}`, `field "hold": expected string, got JSON number`},
		{"negative hold", `{"region": "r", "steps": [10], "hold": "-1s"}`, "hold -1s is negative"},
		{"bad p95", `{"region": "r", "steps": [10], "guard": {"max_p95": "fast"}}`, `guard.max_p95 "fast" is not a duration`},
		{"bad max_wait", `{"region": "r", "steps": [10], "guard": {"max_wait": "1y"}}`, `guard.max_wait "1y" is not a duration`},
		{"unknown field", `{"region": "r", "steps": [10], "speed": 2}`, `unknown field "speed"`},
		{"unknown guard field", `{"region": "r", "steps": [10], "guard": {"max_p99": "1s"}}`, `unknown field "max_p99"`},
		{"long reason", `{"region": "r", "steps": [10], "reason": "` + strings.Repeat("x", 1025) + `"}`, "reason is 1025 bytes long"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			lastShift.req = node.ShiftRequest{}
			code, body := post("/v1/services/api/shifts", tc.body)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.msg) {
				t.Errorf("got %d %s, want 400 with %q", code, body, tc.msg)
			}
			if lastShift.req.Region != "" {
				t.Error("a refused request reached the backend")
			}
		})
	}
	code, body = post("/v1/services/api/shifts/abc123/abort", `{"reason": "x", "force": true}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `unknown field "force"`) {
		t.Errorf("abort with an unknown field: %d %s", code, body)
	}
}
