package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/meridian-edge/meridian/node"
)

// APIError is an error with the HTTP status it is answered with. Handlers
// return it for problems found in the request itself; errors from the node
// are mapped by their kind (see statusOf).
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }

func apiErrorf(status int, format string, args ...any) error {
	return &APIError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return apiErrorf(http.StatusBadRequest, format, args...)
}

// statusOf maps an error to the status it is answered with.
func statusOf(err error) int {
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		return ae.Status
	case errors.Is(err, node.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, node.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, node.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, node.ErrPrecondition):
		return http.StatusPreconditionFailed
	case errors.Is(err, node.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON form of every error the API answers.
type errorBody struct {
	Error string `json:"error"`
}

// writeError answers err as {"error": "message"} with its status. It is
// the only place the API writes an error.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meridian"`)
	}
	if status >= http.StatusInternalServerError {
		a.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.Debug("admin request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, errorBody{Error: err.Error()})
}
