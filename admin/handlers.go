package admin

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// Audit read limits: the default, and the most one request may ask for
// (the state store keeps no more than this).
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = state.DefaultAuditCap
)

// ServicesBody is the answer of GET /v1/services.
type ServicesBody struct {
	Services []node.ServiceView `json:"services"`
}

// AuditBody is the answer of GET /v1/audit, newest entry first.
type AuditBody struct {
	Entries []state.AuditEntry `json:"entries"`
}

// DialsRequest is the body of PATCH /v1/services/{s}/dials. Every dial
// in it is applied, or none.
type DialsRequest struct {
	Dials  map[string]int `json:"dials"`
	Reason string         `json:"reason"`
}

// OverrideRequest is the body of POST /v1/regions/{r}/override.
type OverrideRequest struct {
	Health string `json:"health"` // up, down or auto
	Reason string `json:"reason"`
}

// ReloadRequest is the optional body of POST /v1/reload.
type ReloadRequest struct {
	Reason string `json:"reason"`
}

// WhoAmIBody is the answer of GET /v1/whoami: the token a request carried.
type WhoAmIBody struct {
	Name string `json:"name"`
	Role string `json:"role"` // read or write
}

func (a *API) whoami(w http.ResponseWriter, _ *http.Request, c call) error {
	role := "read"
	if c.write {
		role = "write"
	}
	writeJSON(w, http.StatusOK, WhoAmIBody{Name: c.token, Role: role})
	return nil
}

func (a *API) status(w http.ResponseWriter, _ *http.Request, _ call) error {
	writeJSON(w, http.StatusOK, a.b.Status())
	return nil
}

func (a *API) services(w http.ResponseWriter, _ *http.Request, _ call) error {
	writeJSON(w, http.StatusOK, ServicesBody{Services: a.b.Services()})
	return nil
}

func (a *API) service(w http.ResponseWriter, _ *http.Request, c call) error {
	sv, err := a.b.Service(c.params["service"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", sv.ETag)
	writeJSON(w, http.StatusOK, sv)
	return nil
}

func (a *API) setDials(w http.ResponseWriter, r *http.Request, c call) error {
	var req DialsRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if len(req.Dials) == 0 {
		return badRequest(`"dials" must name at least one region, as in {"dials": {"eu-west": 10}}`)
	}
	for region, d := range req.Dials {
		if d < 0 || d > 100 {
			return badRequest("dial %d for region %q is outside 0..100", d, region)
		}
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	ifMatch, err := ifMatch(r)
	if err != nil {
		return err
	}
	sv, err := a.b.SetDials(c.params["service"], req.Dials, ifMatch, c.actor(req.Reason))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", sv.ETag)
	writeJSON(w, http.StatusOK, sv)
	return nil
}

// ifMatch returns the If-Match entity tag to hold a change to, or "" for
// none. "*" matches any existing service, so it is "" too: the node
// reports a missing service on its own.
func ifMatch(r *http.Request) (string, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	switch {
	case v == "" || v == "*":
		return "", nil
	case strings.Contains(v, ","):
		return "", badRequest("If-Match must hold one entity tag, as read from the ETag header")
	}
	return v, nil
}

func (a *API) setOverride(w http.ResponseWriter, r *http.Request, c call) error {
	var req OverrideRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	switch req.Health {
	case "up", "down", "auto":
	case "":
		return badRequest(`"health" is required: up, down or auto`)
	default:
		return badRequest("health must be up, down or auto, not %q", req.Health)
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	rv, err := a.b.SetOverride(c.params["region"], req.Health, c.actor(req.Reason))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rv)
	return nil
}

func (a *API) explain(w http.ResponseWriter, r *http.Request, _ call) error {
	q := r.URL.Query()
	if err := checkQuery(q, "service", "client"); err != nil {
		return err
	}
	service, client := q.Get("service"), q.Get("client")
	if service == "" || client == "" {
		return badRequest("service and client are required, as in ?service=api&client=81.2.69.142")
	}
	addr, err := netip.ParseAddr(client)
	if err != nil || addr.Zone() != "" {
		return badRequest("client %q is not an IP address", client)
	}
	ex, err := a.b.Explain(service, addr.Unmap())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ex)
	return nil
}

func (a *API) audit(w http.ResponseWriter, r *http.Request, _ call) error {
	q := r.URL.Query()
	if err := checkQuery(q, "limit"); err != nil {
		return err
	}
	limit := DefaultAuditLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxAuditLimit {
			return badRequest("limit must be a whole number from 1 to %d, not %q", MaxAuditLimit, s)
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, AuditBody{Entries: a.b.Audit(limit)})
	return nil
}

func (a *API) reload(w http.ResponseWriter, r *http.Request, c call) error {
	var req ReloadRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	if err := checkReason(req.Reason); err != nil {
		return err
	}
	if err := a.b.Reload(c.actor(req.Reason)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.b.Status())
	return nil
}
