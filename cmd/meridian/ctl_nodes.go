package main

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meridian-edge/meridian/admin"
	"github.com/meridian-edge/meridian/fleet"
	"github.com/meridian-edge/meridian/node"
)

func ctlNodes(c *ctlClient, out io.Writer, _ []string, f *ctlFlags) error {
	var body admin.NodesBody
	if printed, err := c.call(out, f, http.MethodGet, "/v1/nodes", nil, nil, &body); printed || err != nil {
		return err
	}
	return printNodes(out, body.Nodes, time.Now())
}

// printNodes writes one line per live node: the regions it sees down are
// where its view and its neighbours' part.
func printNodes(out io.Writer, nodes []fleet.Member, now time.Time) error {
	t := newTable(out)
	t.row("NAME\tVERSION\tREADY\tCONFIG\tLAST SEEN\tSEES DOWN")
	for _, m := range nodes {
		var down []string
		for _, r := range m.Regions {
			if !r.Up {
				down = append(down, r.Name)
			}
		}
		hash := m.ConfigHash
		if len(hash) > 12 {
			hash = hash[:12]
		}
		t.row("%s\t%s\t%s\t%s\t%s\t%s", m.Name, orDash(m.Version), yesNo(m.Ready), orDash(hash),
			ago(m.Updated, now), orDash(strings.Join(down, ",")))
	}
	return t.flush()
}

// stateLine renders the state backend's health for ctl status.
func stateLine(s *node.StateView) string {
	if s.Connected {
		return s.Backend + ", connected"
	}
	line := s.Backend + ", DISCONNECTED"
	if s.Since != nil {
		line += " since " + s.Since.UTC().Format(time.RFC3339)
	}
	if s.Error != "" {
		line += ": " + s.Error
	}
	return line
}
