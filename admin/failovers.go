package admin

import (
	"net/http"
	"time"

	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// failoverBackend is what the failover and drill endpoints ask of a node
// (SPEC section 10). *node.Node satisfies it; a Backend without it
// answers these endpoints with 404.
type failoverBackend interface {
	StartFailover(service string, req node.FailoverRequest, who node.Actor) (state.Failover, error)
	Failovers(service string) ([]state.Failover, error)
	StartDrill(service, region string, d time.Duration, who node.Actor) (state.Drill, error)
	Drills(service string) ([]state.Drill, error)
}

var _ failoverBackend = (*node.Node)(nil)

// FailoverRequest is the body of POST /v1/services/{s}/failovers.
type FailoverRequest struct {
	To             string `json:"to"`
	Force          bool   `json:"force"`
	AcceptDataLoss bool   `json:"accept_data_loss"`
	DryRun         bool   `json:"dry_run"`
	Reason         string `json:"reason"`
}

// FailoversBody is the answer of GET /v1/services/{s}/failovers, newest
// first.
type FailoversBody struct {
	Failovers []state.Failover `json:"failovers"`
}

// DrillRequest is the body of POST /v1/services/{s}/drills; duration is a
// Go duration string, default 2m.
type DrillRequest struct {
	Region   string `json:"region"`
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
}

// DrillsBody is the answer of GET /v1/services/{s}/drills, newest first.
type DrillsBody struct {
	Drills []state.Drill `json:"drills"`
}

func (a *API) failovers() (failoverBackend, error) {
	fb, ok := a.b.(failoverBackend)
	if !ok {
		return nil, apiErrorf(http.StatusNotFound, "this node runs no failovers")
	}
	return fb, nil
}

func (a *API) startFailover(w http.ResponseWriter, r *http.Request, c call) error {
	fb, err := a.failovers()
	if err != nil {
		return err
	}
	var req FailoverRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.To == "" {
		return badRequest(`"to" is required, as in {"to": "eu-west", "reason": "us-east lost its database"}`)
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	f, err := fb.StartFailover(c.params["service"], node.FailoverRequest{
		To: req.To, Force: req.Force, AcceptDataLoss: req.AcceptDataLoss, DryRun: req.DryRun,
	}, c.actor(req.Reason))
	if err != nil {
		return err
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, f)
		return nil
	}
	w.Header().Set("Location", r.URL.Path+"/"+f.ID)
	writeJSON(w, http.StatusCreated, f)
	return nil
}

func (a *API) listFailovers(w http.ResponseWriter, _ *http.Request, c call) error {
	fb, err := a.failovers()
	if err != nil {
		return err
	}
	list, err := fb.Failovers(c.params["service"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, FailoversBody{Failovers: list})
	return nil
}

func (a *API) startDrill(w http.ResponseWriter, r *http.Request, c call) error {
	fb, err := a.failovers()
	if err != nil {
		return err
	}
	var req DrillRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Region == "" {
		return badRequest(`"region" is required, as in {"region": "us-east", "duration": "2m"}`)
	}
	d, err := parseDuration("duration", req.Duration)
	if err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	dr, err := fb.StartDrill(c.params["service"], req.Region, d, c.actor(req.Reason))
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.URL.Path+"/"+dr.ID)
	writeJSON(w, http.StatusCreated, dr)
	return nil
}

func (a *API) listDrills(w http.ResponseWriter, _ *http.Request, c call) error {
	fb, err := a.failovers()
	if err != nil {
		return err
	}
	list, err := fb.Drills(c.params["service"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, DrillsBody{Drills: list})
	return nil
}
