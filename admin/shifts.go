package admin

import (
	"net/http"
	"time"

	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// ShiftRequest is the body of POST /v1/services/{s}/shifts. Durations are
// Go duration strings ("5m", "500ms"); hold defaults to 5m, and guard
// fields left out take their defaults (min_requests 100, max_wait 4×hold)
// or, for the limits, are not checked.
type ShiftRequest struct {
	Region string       `json:"region"`
	Steps  []int        `json:"steps"`
	Hold   string       `json:"hold"`
	Guard  GuardRequest `json:"guard"`
	Reason string       `json:"reason"`
}

// GuardRequest is the guard of a ShiftRequest.
type GuardRequest struct {
	MaxErrorRatio float64 `json:"max_error_ratio"`
	MaxP95        string  `json:"max_p95"`
	MinRequests   int     `json:"min_requests"`
	MaxWait       string  `json:"max_wait"`
}

// ShiftsBody is the answer of GET /v1/services/{s}/shifts, newest first.
type ShiftsBody struct {
	Shifts []state.Shift `json:"shifts"`
}

// AbortRequest is the optional body of POST
// /v1/services/{s}/shifts/{id}/abort.
type AbortRequest struct {
	Reason string `json:"reason"`
}

func (a *API) startShift(w http.ResponseWriter, r *http.Request, c call) error {
	var req ShiftRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Region == "" {
		return badRequest(`"region" is required, as in {"region": "us-west", "steps": [10, 100]}`)
	}
	if len(req.Steps) == 0 {
		return badRequest(`"steps" must list at least one dial, as in {"steps": [10, 50, 100]}`)
	}
	for i, d := range req.Steps {
		if d < 0 || d > 100 {
			return badRequest("step %d: dial %d is outside 0..100", i+1, d)
		}
	}
	hold, err := parseDuration("hold", req.Hold)
	if err != nil {
		return err
	}
	p95, err := parseDuration("guard.max_p95", req.Guard.MaxP95)
	if err != nil {
		return err
	}
	maxWait, err := parseDuration("guard.max_wait", req.Guard.MaxWait)
	if err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	sh, err := a.b.StartShift(c.params["service"], node.ShiftRequest{
		Region: req.Region,
		Steps:  req.Steps,
		Hold:   hold,
		Guard: state.Guard{
			MaxErrorRatio: req.Guard.MaxErrorRatio,
			MaxP95:        p95,
			MinRequests:   req.Guard.MinRequests,
			MaxWait:       maxWait,
		},
	}, c.actor(req.Reason))
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path+"/"+sh.ID)
	writeJSON(w, http.StatusCreated, sh)
	return nil
}

// parseDuration reads an optional duration field; "" is 0.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest("%s %q is not a duration such as \"5m\" or \"500ms\"", field, s)
	}
	if d < 0 {
		return 0, badRequest("%s %s is negative", field, s)
	}
	return d, nil
}

func (a *API) shifts(w http.ResponseWriter, _ *http.Request, c call) error {
	list, err := a.b.Shifts(c.params["service"])
	if err != nil {
		return err
	}
	if list == nil {
		list = []state.Shift{}
	}
	writeJSON(w, http.StatusOK, ShiftsBody{Shifts: list})
	return nil
}

func (a *API) abortShift(w http.ResponseWriter, r *http.Request, c call) error {
	var req AbortRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	sh, err := a.b.AbortShift(c.params["service"], c.params["id"], c.actor(req.Reason))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sh)
	return nil
}
