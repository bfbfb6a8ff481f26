package admin

import "net/http"

// DrainRequest is the optional body of POST /v1/node/drain and
// /v1/node/undrain.
type DrainRequest struct {
	Reason string `json:"reason"`
}

func (a *API) drain(w http.ResponseWriter, r *http.Request, c call) error {
	return a.setDrained(w, r, c, true)
}

func (a *API) undrain(w http.ResponseWriter, r *http.Request, c call) error {
	return a.setDrained(w, r, c, false)
}

func (a *API) setDrained(w http.ResponseWriter, r *http.Request, c call, drain bool) error {
	var req DrainRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	dv, err := a.b.SetDrained(drain, c.actor(req.Reason))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dv)
	return nil
}
