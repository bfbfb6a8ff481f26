package admin

import (
	"net/http"

	"github.com/meridian-edge/meridian/fleet"
)

// nodeLister is what GET /v1/nodes asks of a node; *node.Node has it.
type nodeLister interface {
	Nodes() []fleet.Member
}

// NodesBody is the answer of GET /v1/nodes.
type NodesBody struct {
	Nodes []fleet.Member `json:"nodes"`
}

func (a *API) nodes(w http.ResponseWriter, _ *http.Request, _ call) error {
	nl, ok := a.b.(nodeLister)
	if !ok {
		return apiErrorf(http.StatusNotFound, "this node keeps no fleet list")
	}
	writeJSON(w, http.StatusOK, NodesBody{Nodes: nl.Nodes()})
	return nil
}
