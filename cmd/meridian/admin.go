package main

import (
	"log/slog"
	"net/http"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/config"
	"github.com/meridian-edge/meridian/node"
)

// adminHandler returns what the node serves on listen.admin under /: the
// admin API, authenticating with the tokens of the config in force, so that
// a reload rotates them.
func adminHandler(log *slog.Logger) func(*node.Node) http.Handler {
	return func(n *node.Node) http.Handler {
		current := func() config.Admin {
			if v := n.View(); v != nil {
				return v.Config.Admin
			}
			return config.Admin{}
		}
		return admin.New(n, current(), admin.Options{Logger: log, Current: current})
	}
}
