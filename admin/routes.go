package admin

import "net/http"

// routeTable lists every endpoint of the API (SPEC section 6). The shift
// endpoints' handlers are in shifts.go.
func (a *API) routeTable() []route {
	return []route{
		get("/v1/status", a.status),
		get("/v1/whoami", a.whoami),
		get("/v1/services", a.services),
		get("/v1/services/{service}", a.service),
		change(http.MethodPatch, "/v1/services/{service}/dials", a.setDials),
		change(http.MethodPost, "/v1/regions/{region}/override", a.setOverride),
		change(http.MethodPost, "/v1/services/{service}/shifts", a.startShift),
		get("/v1/services/{service}/shifts", a.shifts),
		change(http.MethodPost, "/v1/services/{service}/shifts/{id}/abort", a.abortShift),
		get("/v1/explain", a.explain),
		get("/v1/audit", a.audit),
		change(http.MethodPost, "/v1/reload", a.reload),
		change(http.MethodPost, "/v1/node/drain", a.drain), // drain.go
		change(http.MethodPost, "/v1/node/undrain", a.undrain),
		get("/v1/nodes", a.nodes),
		change(http.MethodPost, "/v1/services/{service}/failovers", a.startFailover),
		get("/v1/services/{service}/failovers", a.listFailovers),
		change(http.MethodPost, "/v1/services/{service}/drills", a.startDrill),
		get("/v1/services/{service}/drills", a.listDrills),
	}
}
