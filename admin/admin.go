package admin

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
	"github.com/meridian-edge/meridian/state"
)

// Backend is what the API asks of a node. *node.Node satisfies it. Every
// change validates its input, persists it with an audit entry and publishes
// it before returning; errors wrap node.ErrNotFound, node.ErrInvalid,
// node.ErrConflict or node.ErrPrecondition.
type Backend interface {
	Status() node.StatusView
	Services() []node.ServiceView
	Service(name string) (node.ServiceView, error)
	SetDials(service string, dials map[string]int, ifMatch string, who node.Actor) (node.ServiceView, error)
	SetOverride(region, health string, who node.Actor) (node.RegionView, error)
	Explain(service string, client netip.Addr) (*node.Explanation, error)
	Audit(limit int) []state.AuditEntry
	Reload(who node.Actor) error
	StartShift(service string, req node.ShiftRequest, who node.Actor) (state.Shift, error)
	Shifts(service string) ([]state.Shift, error)
	AbortShift(service, id string, who node.Actor) (state.Shift, error)
	SetDrained(drain bool, who node.Actor) (node.DrainView, error)
}

// Options are the API's injected edges.
type Options struct {
	Logger *slog.Logger
	// Current, when set, returns the admin settings in force; it is asked
	// on every request, so that a config reload rotates tokens. When nil,
	// the settings given to New hold for the handler's life.
	Current func() config.Admin
}

// API is the admin API handler.
type API struct {
	b      Backend
	log    *slog.Logger
	keys   *keySource
	routes []route
}

// New returns the admin API for b, authenticating with cfg's tokens (or
// opts.Current's).
func New(b Backend, cfg config.Admin, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &API{
		b:    b,
		log:  opts.Logger.With("component", "admin"),
		keys: &keySource{current: opts.Current, ring: newKeyring(cfg.Tokens)},
	}
	a.routes = a.routeTable()
	return a
}

// call is what a handler gets beside the request: the path parameters and
// the name and role of the token that authorised it.
type call struct {
	params map[string]string
	token  string
	write  bool
}

// actor is who makes a change: the token's name and the reason given.
func (c call) actor(reason string) node.Actor {
	return node.Actor{Token: c.token, Reason: reason}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c call) error

// route is one method and path pattern. Pattern segments in braces match
// any one non-empty path segment and are handed to the handler by name.
type route struct {
	method  string
	pattern []string
	write   bool // needs a write token; reads need read or write
	handle  handlerFunc
}

func get(pattern string, h handlerFunc) route {
	return route{method: http.MethodGet, pattern: split(pattern), handle: h}
}

func change(method, pattern string, h handlerFunc) route {
	return route{method: method, pattern: split(pattern), write: true, handle: h}
}

func split(path string) []string { return strings.Split(strings.TrimPrefix(path, "/"), "/") }

// match returns the params of path under pattern, or ok false.
func match(pattern, path []string) (map[string]string, bool) {
	if len(pattern) != len(path) {
		return nil, false
	}
	var params map[string]string
	for i, seg := range pattern {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			if path[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[seg[1:len(seg)-1]] = path[i]
			continue
		}
		if seg != path[i] {
			return nil, false
		}
	}
	return params, true
}

// ServeHTTP routes r: an unknown path is 404, a known path with another
// method 405 with Allow, then the token is checked and the handler runs.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	path := split(r.URL.Path)
	var allow []string
	for i := range a.routes {
		rt := &a.routes[i]
		params, ok := match(rt.pattern, path)
		if !ok {
			continue
		}
		if rt.method != r.Method {
			allow = append(allow, rt.method)
			continue
		}
		k, err := a.authorize(r, rt.write)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := rt.handle(w, r, call{params: params, token: k.name, write: k.write}); err != nil {
			a.writeError(w, r, err)
		}
		return
	}
	if len(allow) == 0 && serveDashboard(w, r) {
		return
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		a.writeError(w, r, apiErrorf(http.StatusMethodNotAllowed,
			"method %s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
		return
	}
	a.writeError(w, r, apiErrorf(http.StatusNotFound, "no such endpoint: %s", r.URL.Path))
}
